/**
 * The child process of a SuspectSandbox: imports the app module, then runs the messages its
 * parent sends, one reply each. It holds no broker connection: the parent keeps the delivery and
 * settles it. A handler that kills this process takes nothing else down; that is the point.
 */
import { serializeError } from "../errors.js";
import { runAlone } from "../pipeline/run-batch.js";
import { loadHandlers } from "./load-handlers.js";
import { SANDBOX_SETUP_ENV, type SandboxAbort, type SandboxReply, type SandboxRun, type SandboxSetup } from "./sandbox-protocol.js";
import { reviveError } from "./thread-protocol.js";

const setup = JSON.parse(process.env[SANDBOX_SETUP_ENV] ?? "{}") as SandboxSetup;
const running = new Map<number, AbortController>();
const send = (reply: SandboxReply) => process.send?.(reply);

// The parent went away (killed, or closed us): nothing here may outlive it.
process.on("disconnect", () => process.exit(0));

loadHandlers(setup.appModule, setup.cwd, setup.subscriptions).then(
  (handlers) => {
    send({ kind: "ready", ids: [...handlers.keys()] });
    process.on("message", (message: SandboxRun | SandboxAbort) => {
      if (message.kind === "abort") {
        running.get(message.task)?.abort(reviveError(message.reason));
        return;
      }
      const prepared = handlers.get(message.sub);
      if (!prepared) return send({ kind: "load-failed", error: { name: "AppLoadError", message: `no handler for ${message.sub} in ${setup.appModule}` } });
      const controller = new AbortController();
      running.set(message.task, controller);
      void Promise.resolve(runAlone(prepared, message.data, controller.signal)).then((outcome) => {
        running.delete(message.task);
        send({ kind: "done", task: message.task, outcome });
      });
    });
  },
  (error: unknown) => {
    send({ kind: "load-failed", error: serializeError(error) });
    process.disconnect?.();
  },
);
