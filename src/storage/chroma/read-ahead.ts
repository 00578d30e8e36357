/** How far `readAhead` runs ahead of its consumer. */
export interface ReadAheadOptions<T> {
  /** Reads running while the caller works on a result (0: strictly one after another). */
  ahead: number;
  /** How many reads there are, when known. */
  count?: number | undefined;
  /** Whether a result is the last one (e.g. a short page); reads already started beyond it are dropped. */
  isLast?: ((result: T) => boolean) | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Yields read(0), read(1), … in order while up to `ahead` later reads already run, so waiting for a server or a
 * download overlaps the caller's work on the current result. A read that fails surfaces when its turn comes (never as
 * an unhandled rejection meanwhile), and nothing is read past the end. Memory: `ahead` + 1 results.
 */
export async function* readAhead<T>(read: (index: number) => Promise<T>, options: ReadAheadOptions<T>): AsyncGenerator<T> {
  const { count = Number.POSITIVE_INFINITY, isLast = () => false, signal } = options;
  const running: Promise<T>[] = [];
  let next = 0;
  const startUpTo = (inFlight: number) => {
    while (running.length < inFlight && next < count) {
      const result = read(next++);
      result.catch(() => undefined);
      running.push(result);
    }
  };
  for (;;) {
    startUpTo(Math.max(1, options.ahead));
    const result = running.shift();
    if (!result) return;
    signal?.throwIfAborted();
    const value = await result;
    const last = isLast(value);
    if (!last) startUpTo(options.ahead);
    yield value;
    if (last) return;
  }
}
