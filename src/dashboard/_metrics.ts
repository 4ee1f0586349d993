/**
 * `/metrics`: the dashboard's state in the Prometheus text exposition
 * format (version 0.0.4), for Grafana users: node up, power, failures in
 * the last hour, the last polled value per node and command, and the runs
 * seen ending since the dashboard started, counted and timed by outcome.
 * Pure.
 *
 * @module
 */

import { type DashboardModel, DURATION_BUCKETS } from "./_model.ts";

/** The media type of the text format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A label value as the text format quotes it: `\`, `"` and newline escaped. */
export function labelValue(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')
    .replaceAll("\n", "\\n");
}

function labels(pairs: Record<string, string>): string {
  const inner = Object.entries(pairs)
    .map(([k, v]) => `${k}="${labelValue(v)}"`).join(",");
  return inner ? `{${inner}}` : "";
}

/** A sample value as the text format writes it (`+Inf`, `NaN`). */
export function metricValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

/** One metric family: HELP, TYPE, then its samples. */
function family(
  name: string,
  type: "gauge" | "counter" | "histogram",
  help: string,
  samples: [suffix: string, labels: Record<string, string>, value: number][],
): string[] {
  return [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} ${type}`,
    ...samples.map(([suffix, l, v]) =>
      `${name}${suffix}${labels(l)} ${metricValue(v)}`
    ),
  ];
}

/** The whole `/metrics` text of `model`. */
export function formatMetrics(model: DashboardModel): string {
  const tiles = [...model.tiles.values()];
  const lines = [
    ...family(
      "fiwi_node_up",
      "gauge",
      "Whether the node answered its last reachability probe (1) or not (0); absent while connecting.",
      tiles.filter((t) => t.state !== "connecting")
        .map((t) => ["", { node: t.node }, t.state === "up" ? 1 : 0]),
    ),
    ...family(
      "fiwi_node_power_on",
      "gauge",
      "Power state read from the node's switch: 1 on, 0 off (nodes with a switch whose state is known).",
      tiles.filter((t) => t.power === "on" || t.power === "off")
        .map((t) => ["", { node: t.node }, t.power === "on" ? 1 : 0]),
    ),
    ...family(
      "fiwi_node_failures_last_hour",
      "gauge",
      "Runs on the node whose outcome was not a success, in the last hour.",
      tiles.map((t) => ["", { node: t.node }, t.failures]),
    ),
    ...family(
      "fiwi_poll_value",
      "gauge",
      "The last numeric value polled, per node and command.",
      [...model.latest].flatMap(([command, nodes]) =>
        [...nodes].filter(([, l]) => l.value !== null)
          .map(([node, l]) =>
            ["", { node, command }, l.value!] as [
              string,
              Record<string, string>,
              number,
            ]
          )
      ),
    ),
    ...family(
      "fiwi_runs_total",
      "counter",
      "Node runs seen ending since the dashboard started, by outcome.",
      [...model.runs].map(([outcome, c]) => ["", { outcome }, c.count]),
    ),
    ...family(
      "fiwi_run_duration_seconds",
      "histogram",
      "Duration of the node runs seen ending since the dashboard started, by outcome.",
      [...model.runs].flatMap(([outcome, c]) => [
        ...DURATION_BUCKETS.map((le, i) =>
          ["_bucket", { outcome, le: String(le) }, c.buckets[i]] as [
            string,
            Record<string, string>,
            number,
          ]
        ),
        ["_bucket", { outcome, le: "+Inf" }, c.count],
        ["_sum", { outcome }, c.durationSum],
        ["_count", { outcome }, c.count],
      ]),
    ),
  ];
  return lines.join("\n") + "\n";
}
