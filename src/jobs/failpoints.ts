/**
 * Fault injection for crash tests, in the spirit of kopia's: when `VK_FAILPOINT` names a point, the process announces
 * it on stderr and stops there, so a test can SIGKILL it at exactly that step. With `VK_FAILPOINT_PAUSE=1` it goes on
 * when it receives SIGUSR2 instead, so a test can change the data under a run between two of its steps (say, between
 * reading records and deleting them). Unset, it costs one comparison.
 */
export async function failpoint(name: string): Promise<void> {
  if (process.env.VK_FAILPOINT !== name) return;
  if (process.env.VK_FAILPOINT_PAUSE !== "1") {
    process.stderr.write(`failpoint ${name} reached\n`);
    await new Promise<never>(() => undefined);
  }
  // A signal listener does not keep the process alive on its own; the timer does, until the signal comes.
  const alive = setInterval(() => undefined, 60_000);
  const resumed = new Promise<void>((resolve) => process.once("SIGUSR2", () => resolve())).finally(() => clearInterval(alive));
  process.stderr.write(`failpoint ${name} reached\n`);
  await resumed;
  process.stderr.write(`failpoint ${name} resumed\n`);
}
