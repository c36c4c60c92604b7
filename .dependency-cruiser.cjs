// The layering of WQueue, checked by dependency-cruiser (`npm run check:layers`, and a test in the
// suite: test/unit/layering.test.ts). docs/architecture.md explains each layer.
//
// A module may import its own layer and any layer below it, never one above. Layers, top first:
const LAYERS = [
  {
    // Roots of a process or thread: the CLI (only bin/ starts it), the public entry points, and what
    // a worker thread or the suspect sandbox runs first (it loads the app, as the CLI does).
    name: "entry",
    path: ["^bin/", "^src/cli/", "^src/index\\.ts$", "^src/testing/", "^src/runners/(thread-entry|sandbox-entry|load-handlers)\\.ts$"],
  },
  { name: "supervisor", path: ["^src/supervisor/"] },
  { name: "app-worker", path: ["^src/app/", "^src/worker/"], pathNot: ["^src/app/types\\.ts$"] },
  { name: "dispatch", path: ["^src/dispatch/"] },
  {
    name: "runners",
    path: ["^src/runners/"],
    pathNot: ["^src/runners/(thread-entry|sandbox-entry|load-handlers)\\.ts$"],
  },
  // Reads the worker only through the WorkerView it declares (observability/WorkerView.ts).
  { name: "observability", path: ["^src/observability/"] },
  { name: "pipeline", path: ["^src/pipeline/"] },
  { name: "dead-letters", path: ["^src/dead-letters/"] },
  // Shared flow-control state (cron leases, rate limits, pauses) in Redis or SQLite, over brokers/shared.
  { name: "coordination", path: ["^src/coordination/"] },
  { name: "brokers", path: ["^src/brokers/"], pathNot: ["^src/brokers/contract\\.ts$"] },
  // The vocabulary every layer speaks: declarations, errors, the logger.
  {
    name: "vocabulary",
    path: ["^src/app/types\\.ts$", "^src/brokers/contract\\.ts$", "^src/errors\\.ts$", "^src/log/"],
  },
];

const upward = LAYERS.flatMap((lower, i) =>
  LAYERS.slice(0, i).map((higher) => ({
    name: `layer:${lower.name}-not-to-${higher.name}`,
    comment: `${lower.name} is below ${higher.name}: it may not import it (docs/architecture.md, "Layers")`,
    severity: "error",
    from: { path: lower.path, pathNot: lower.pathNot },
    to: { path: higher.path, pathNot: higher.pathNot },
  })),
);

// Folders of src/brokers that hold code shared by adapters rather than an adapter. Shared code
// lives here or in src/brokers/*.ts, below every adapter.
const SHARED_BROKER_FOLDERS = "(aws|shared)";
const ADAPTER = "^src/brokers/[^/]+/";
const SHARED = `^src/brokers/${SHARED_BROKER_FOLDERS}/`;

module.exports = {
  forbidden: [
    ...upward,
    {
      name: "adapter-not-to-other-adapter",
      comment: "an adapter shares code with another only through src/brokers/*.ts or a shared folder",
      severity: "error",
      from: { path: "^src/brokers/([^/]+)/", pathNot: SHARED },
      to: { path: ADAPTER, pathNot: ["^src/brokers/$1/", SHARED] },
    },
    {
      name: "shared-broker-code-not-to-adapter",
      comment: "code shared by adapters sits below them; only registry.ts maps schemes to adapters",
      severity: "error",
      from: {
        path: ["^src/brokers/[^/]+\\.ts$", SHARED],
        pathNot: "^src/brokers/registry\\.ts$",
      },
      to: { path: ADAPTER, pathNot: SHARED },
    },
    {
      name: "adapters-through-registry",
      comment:
        "outside src/brokers an adapter is reached through registry.ts (index.ts exports MemoryBroker; the test worker reads the memory broker's queues to know it is drained)",
      severity: "error",
      from: { path: "^src/", pathNot: ["^src/brokers/", "^src/index\\.ts$", "^src/testing/test-worker\\.ts$"] },
      to: { path: ADAPTER, pathNot: SHARED },
    },
    {
      name: "cli-only-from-bin",
      comment: "nothing imports the CLI but bin/ (and the CLI itself)",
      severity: "error",
      from: { pathNot: ["^bin/", "^src/cli/"] },
      to: { path: "^src/cli/" },
    },
    {
      name: "consumer-not-to-broker",
      comment: "a consumer gets a narrow context from its broker, not the broker object",
      severity: "error",
      from: { path: "^src/brokers/([^/]+)/.*(Consumer|Delivery)\\.ts$" },
      to: { path: "^src/brokers/$1/.*Broker\\.ts$" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^dist/" },
    // type-only imports count: a layer that names another's types depends on it
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"] },
  },
};
