/**
 * Fault injection for crash tests, in the spirit of kopia's: when `VK_FAILPOINT` names a point, the process announces
 * it on stderr and stops there (it never continues), so a test can SIGKILL it at exactly that step. Unset, it costs
 * one comparison.
 */
export async function failpoint(name: string): Promise<void> {
  if (process.env.VK_FAILPOINT !== name) return;
  process.stderr.write(`failpoint ${name} reached\n`);
  await new Promise<never>(() => undefined);
}
