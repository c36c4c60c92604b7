export { WQueue } from "./app/WQueue.js";
export { QueueHandle } from "./app/QueueHandle.js";
export type {
  BatchHandler,
  BatchListenOptions,
  BatchOptions,
  BatchResult,
  BodyFormat,
  CronHandler,
  CronOptions,
  CronTick,
  Handler,
  InferInput,
  InferOutput,
  ListenOptions,
  Message,
  Middleware,
  PublishOptions,
  RateLimitOptions,
  RetryOptions,
  StandardSchema,
  WQueueOptions,
} from "./app/types.js";
export type {
  Broker,
  BrokerFeatures,
  BrokerLog,
  Consumer,
  ConsumerOptions,
  DeadLetterReason,
  Delivery,
  Headers,
  OutgoingMessage,
} from "./brokers/contract.js";
export { createBroker, DEFAULT_BROKER_URL, registerBroker, type BrokerOpener } from "./brokers/registry.js";
export type { BrokerFactory, BrokerSource } from "./brokers/BrokerSet.js";
export { redactUrl } from "./brokers/url.js";
export { MemoryBroker } from "./brokers/memory/MemoryBroker.js";
export {
  AppLoadError,
  BrokerUnreachableError,
  ConfigError,
  DeadLetterNow,
  DecodeError,
  RateLimited,
  RetryLater,
} from "./errors.js";
export { Worker, type WorkerOptions, DEFAULT_CONCURRENCY } from "./worker/Worker.js";
