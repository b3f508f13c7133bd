// Whether a process id still names a live process: how slimtune tells its own leftovers of an
// interrupted run (temp siblings, session folders; both carry the writer's pid) from a live run's.

/** True when `pid` is this process or a live one (EPERM: alive, but another user's). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
