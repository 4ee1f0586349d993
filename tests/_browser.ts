/**
 * Headless Chromium for the browser tests and the dashboard benchmark:
 * Debian's `chromium` (installed by `.ci/run` when missing) driven by
 * `puppeteer-core` from npm, over a pipe (no port). (`playwright-core` reads
 * /proc when it loads, which `-P=dev` does not grant.)
 *
 * {@linkcode launchBrowser} starts one browser with a profile and a home of
 * its own in a temp dir whose path carries a {@linkcode marker}, so every
 * process of it (renderers, GPU, the crash handler) can be counted, and
 * killed if closing hangs; disposing it (`await using`) closes it, checks
 * nothing of it is left and removes the dir, also when a test fails. Every
 * wait in a page is bounded ({@linkcode BROWSER_WAIT_MS} unless told).
 *
 * @module
 */

import puppeteer, {
  type Browser as Puppeteer,
  type Page,
} from "npm:puppeteer-core@^24";
import { CI, envGet } from "./_live_rig.ts";
import { countCarrying, marker, run } from "./_sh.ts";

/** The browser: `FIWI_CHROMIUM`, default Debian's `/usr/bin/chromium`. */
export const CHROMIUM = envGet("FIWI_CHROMIUM") ?? "/usr/bin/chromium";

/** Longest any wait in a page takes unless a test says otherwise. */
export const BROWSER_WAIT_MS = 10_000;

/** Longest closing the browser may take before its processes are killed. */
const CLOSE_MS = 10_000;

/** What is missing to drive a browser here, or null when Chromium is there. */
export function chromiumMissing(): string | null {
  try {
    Deno.statSync(CHROMIUM);
    return null;
  } catch {
    return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set FIWI_CHROMIUM)`;
  }
}

/**
 * Why the browser tests cannot run here, or null when they can. Under
 * {@linkcode CI} a missing Chromium is no reason: the tests run, and
 * {@linkcode launchBrowser} fails them saying what is missing.
 */
export function browserSkipReason(): string | null {
  return CI ? null : chromiumMissing();
}

/** Options of {@linkcode launchBrowser}. */
export interface LaunchOptions {
  /** Viewport width in CSS pixels (default 1000). */
  width?: number;
  /** Viewport height in CSS pixels (default 600). */
  height?: number;
}

/** A running headless Chromium. */
export interface Browser extends AsyncDisposable {
  /** The browser (its own profile). */
  browser: Puppeteer;
  /** The token every process of this browser carries on its command line. */
  marker: string;
  /** A new page whose waits default to {@linkcode BROWSER_WAIT_MS}. */
  newPage(): Promise<Page>;
  /** Live processes of this browser. */
  processes(): Promise<number>;
}

/** Kill (SIGKILL) every live process of this user carrying `token`. */
async function killCarrying(token: string): Promise<void> {
  const r = await run("pgrep", ["-u", String(Deno.uid() ?? 0), "-f", token]);
  for (const pid of r.stdout.split("\n").map(Number).filter((n) => n > 0)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone already */ }
  }
}

/**
 * Start headless Chromium; fails (saying what is missing) when there is
 * none. As root it runs without Chromium's sandbox, which refuses root.
 */
export async function launchBrowser(
  options: LaunchOptions = {},
): Promise<Browser> {
  const { width = 1000, height = 600 } = options;
  const lacking = chromiumMissing();
  if (lacking !== null) {
    throw new Error(
      `The browser tests cannot start: ${lacking}; under CI=true they fail instead of being skipped`,
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "fiwi_browser_" });
  const token = marker();
  // The profile and the home (where Debian's crash handler keeps its
  // reports) both sit under the token, so every process of this browser
  // carries it and none writes to the user's own ~/.config.
  const base = `${dir}/${token}`;
  await Deno.mkdir(`${base}/home`, { recursive: true });
  let browser: Puppeteer;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      pipe: true,
      userDataDir: `${base}/profile`,
      args: Deno.uid() === 0 ? ["--no-sandbox"] : [],
      env: { ...Deno.env.toObject(), HOME: `${base}/home` },
      defaultViewport: { width, height },
      timeout: 30_000,
    });
  } catch (e) {
    await killCarrying(token);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
  return {
    browser,
    marker: token,
    async newPage() {
      const page = await browser.newPage();
      page.setDefaultTimeout(BROWSER_WAIT_MS);
      page.setDefaultNavigationTimeout(BROWSER_WAIT_MS);
      return page;
    },
    processes: () => countCarrying(token),
    async [Symbol.asyncDispose]() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          browser.close(),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, CLOSE_MS);
          }),
        ]);
      } finally {
        clearTimeout(timer);
        // A renderer or crash handler outliving a clean close is killed
        // too: nothing of the browser may survive the test.
        await killCarrying(token);
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  };
}

/**
 * The little of a page's globals the in-page functions here use (this
 * program is type-checked without the DOM library; casts vanish in the
 * page).
 */
export interface PageGlobals {
  document: { body: { innerText: string } | null };
}

/** Options of {@linkcode waitInPage}. */
export interface WaitInPageOptions {
  /** Bound in milliseconds (default {@linkcode BROWSER_WAIT_MS}). */
  timeout?: number;
  /** Polling interval in ms; default: every animation frame. */
  polling?: number;
}

/**
 * Resolve with the first truthy value `fn(arg)` returns in the page, or
 * reject after the bound with an error naming `what` and the page's text
 * (so a failure says what the page showed instead).
 */
export async function waitInPage<A, R>(
  page: Page,
  what: string,
  fn: (arg: A) => R,
  arg: A,
  options: WaitInPageOptions = {},
): Promise<NonNullable<R>> {
  const timeout = options.timeout ?? BROWSER_WAIT_MS;
  try {
    // `arg` is plain data (puppeteer passes it as it is, not as a handle).
    const inPage = fn as (arg: unknown) => R;
    const handle = await page.waitForFunction(inPage, {
      timeout,
      polling: options.polling ?? "raf",
    }, arg as unknown);
    const value = await handle.jsonValue() as NonNullable<R>;
    await handle.dispose();
    return value;
  } catch (e) {
    const text = await page.evaluate(() =>
      (globalThis as unknown as PageGlobals).document.body?.innerText ?? ""
    ).catch(() => "(page gone)");
    throw new Error(
      `No ${what} within ${timeout} ms; the page shows:\n${
        text.slice(0, 2000)
      }`,
      { cause: e },
    );
  }
}

/** Options of {@linkcode screenshot}. */
export interface ScreenshotOptions {
  /**
   * Also write a size-optimized copy here (a 256-colour palette, maximum
   * compression: `pngquant`, `apt-get install pngquant`), e.g. the
   * README's image.
   */
  optimizedTo?: string;
}

/**
 * Save a PNG of the page's viewport to `path`; its size in bytes (of the
 * optimized copy when one is asked for).
 */
export async function screenshot(
  page: Page,
  path: string,
  options: ScreenshotOptions = {},
): Promise<number> {
  await page.screenshot({ path: path as `${string}.png`, type: "png" });
  if (options.optimizedTo === undefined) return (await Deno.stat(path)).size;
  const out = await run("pngquant", [
    "--force",
    "--skip-if-larger",
    "--strip",
    "--speed",
    "1",
    "--output",
    options.optimizedTo,
    "256",
    "--",
    path,
  ]);
  // 98: the palette version is no smaller; the original is the best then.
  if (out.code === 98) await Deno.copyFile(path, options.optimizedTo);
  else if (out.code !== 0) {
    throw new Error(
      `pngquant failed (${out.code}): ${out.stderr.trim()} (apt-get install pngquant)`,
    );
  }
  return (await Deno.stat(options.optimizedTo)).size;
}
