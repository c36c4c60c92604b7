/**
 * How long a closing consumer waits for Redis to take back its unsettled messages. A close must
 * not hang on a dead link: past this, the messages are left to the reaper (mode=reliable: once the
 * heartbeat expires) or to the next claim (mode=stream: after claimIdle), so nothing is lost.
 */
export const HAND_BACK_DEADLINE_MS = 2000;

/** Resolves true once `work` settled, false after `ms`; never rejects (work's error goes to `onError`). */
export async function within(work: Promise<unknown>, ms: number, onError: (error: Error) => void): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      work.then(
        () => true,
        (error: Error) => {
          onError(error);
          return true;
        },
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
