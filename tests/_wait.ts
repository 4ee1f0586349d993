// Bounded polling for what has no event to await (a process on the node
// going away): every wait ends by its deadline.

/** Poll `probe` every 100 ms until it returns 0 or `ms` pass; the last count. */
export async function settlesToZero(
  probe: () => Promise<number>,
  ms: number,
): Promise<number> {
  const until = performance.now() + ms;
  for (;;) {
    const n = await probe();
    if (n === 0 || performance.now() > until) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
}
