// The test bench app: for each message {"n": N} on `test_bench.sha`, hash a random string with
// sha256 N times, chained, and print the result.
import { DeadLetterNow, WQueue } from "wqueue";
import { chainedSha256, roundsOf } from "./sha.js";

export const app = new WQueue();

app.listenEvents("test_bench.sha", (message) => {
  let rounds: number;
  try {
    rounds = roundsOf(message.body);
  } catch (error) {
    throw new DeadLetterNow((error as Error).message);
  }
  console.log(`sha n=${rounds} ${chainedSha256(rounds)}`);
});
