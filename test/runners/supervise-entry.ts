// `node --import tsx test/runners/supervise-entry.ts N worker -a app.ts --broker URL ...`: the
// process model as `wqueue worker --processes N` will run it, before that flag exists.
// Restart backoff is shortened through WQUEUE_TEST_BACKOFF_MS so the suite does not wait.
import { createLogger } from "../../src/log/logger.js";
import { superviseProcesses } from "../../src/supervisor/supervise.js";

const [processes, ...argv] = process.argv.slice(2);
const initialMs = Number(process.env.WQUEUE_TEST_BACKOFF_MS ?? 500);
const code = await superviseProcesses({
  processes: Number(processes),
  argv,
  logger: createLogger("info"),
  backoff: { initialMs },
});
process.exit(code);
