import { SingleBar } from "cli-progress";

export interface Progress {
  increment(): void;
  stop(): void;
}

/**
 * Progress of `total` steps on `stream`: a bar in a terminal, else a plain line at every tenth
 * (and the last), so a CI log or a pipe shows progress without control characters.
 */
export function createProgress(label: string, total: number, stream: NodeJS.WriteStream = process.stdout): Progress {
  if (stream.isTTY) {
    const bar = new SingleBar({ format: `${label} [{bar}] {value}/{total} messages`, stream });
    bar.start(total, 0);
    return { increment: () => bar.increment(), stop: () => bar.stop() };
  }
  let done = 0;
  let shownTenth = 0;
  return {
    increment() {
      done += 1;
      const tenth = Math.floor((done * 10) / total);
      if (tenth > shownTenth || done === total) {
        shownTenth = tenth;
        stream.write(`${label}: ${done}/${total} messages (${Math.floor((done * 100) / total)}%)\n`);
      }
    },
    stop() {},
  };
}
