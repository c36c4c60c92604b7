import type { BodyFormat, StandardSchema, Subscription } from "../app/types.js";
import type { WQueue } from "../app/WQueue.js";
import { BrokerSet, type BrokerSource, DEFAULT_BROKER_NAME } from "../brokers/BrokerSet.js";
import { DEAD_HEADER_PREFIX, defaultDeadLetterQueue } from "../brokers/dead-letter.js";
import { redactUrl } from "../brokers/url.js";
import { isQueuePattern } from "../brokers/queue-pattern.js";

type Json = Record<string, unknown>;

const CONTENT_TYPES: Record<BodyFormat, string> = { json: "application/json", text: "text/plain", bytes: "application/octet-stream" };

/** The headers the worker writes on a dead letter, beside the original ones (brokers/dead-letter.ts). */
const DEAD_LETTER_HEADERS: Record<string, string> = {
  reason: "why: handler-failed, invalid, undecodable, poison, ...",
  queue: "the queue it died on (where replay sends it)",
  attempts: "deliveries before it died",
  at: "when it died (ISO 8601)",
  "message-id": "its id on the queue it died on",
  key: "its key, if it had one",
  "error-name": "the last error's name",
  "error-message": "the last error's message",
  "error-stack": "the last error's stack",
};

/**
 * A channel's address: the queue name, or for a queue pattern (`tenant.*`) an address with a
 * parameter per wildcard (`tenant.{segment1}`; `>` becomes `{rest}`, one or more segments).
 */
function channelOf(queue: string): { address: string; parameters?: Json } {
  if (!isQueuePattern(queue)) return { address: queue };
  const parameters: Json = {};
  let wildcards = 0;
  const address = queue
    .split(".")
    .map((segment) => {
      if (segment === ">") {
        parameters.rest = { description: `the rest of the queue name, one or more segments (pattern ${queue})` };
        return "{rest}";
      }
      if (segment !== "*") return segment;
      wildcards += 1;
      parameters[`segment${wildcards}`] = { description: `one segment of the queue name (pattern ${queue})` };
      return `{segment${wildcards}}`;
    })
    .join(".");
  return { address, parameters };
}

/** An id usable as an AsyncAPI map key (channels, operations, servers). */
function idOf(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, "_");
}

/**
 * The body's JSON Schema, from a validator implementing Standard JSON Schema (zod 4, ...): the
 * *input* side, since it describes what producers put on the queue. Undefined when it cannot tell.
 */
export function jsonSchemaOf(schema: StandardSchema | undefined): Json | undefined {
  const converter = (schema?.["~standard"] as { jsonSchema?: { input?: (options: { target: string }) => Json } } | undefined)?.jsonSchema;
  if (typeof converter?.input !== "function") return undefined;
  try {
    const { $schema: _, ...jsonSchema } = converter.input({ target: "draft-07" });
    return jsonSchema;
  } catch {
    return undefined; // e.g. a type JSON Schema cannot express
  }
}

function payloadOf(subscription: Subscription): Json {
  const format = subscription.options.decode ?? "json";
  if (format === "text") return { type: "string" };
  if (format === "bytes") return { type: "string", format: "binary" };
  return jsonSchemaOf(subscription.options.schema) ?? { description: "any JSON value (the app gives no schema that exports JSON Schema)" };
}

/** The server of a broker URL; the password never leaves (the description is the redacted URL). */
function serverOf(name: string, url: string | undefined): Json {
  if (url === undefined) return { host: "unknown", protocol: "unknown", description: `broker "${name}": made by a factory in the app; its URL is known only once it runs` };
  const parsed = new URL(url);
  const server: Json = {
    host: parsed.host || "localhost",
    protocol: parsed.protocol.slice(0, -1),
    description: `${name === DEFAULT_BROKER_NAME ? "default broker" : `broker "${name}"`}: ${redactUrl(url)}`,
  };
  if (parsed.pathname && parsed.pathname !== "/") server.pathname = parsed.pathname;
  return server;
}

function describeHandling(subscription: Subscription): string {
  const { options } = subscription;
  const retry = options.retry === false ? "dead-lettered on the first failure" : "retried with backoff, then dead-lettered";
  const parts = [`handled by the app; on failure ${retry}`];
  if (options.ackPolicy && options.ackPolicy !== "after") parts.push(`ack policy "${options.ackPolicy}"`);
  if (options.schema) parts.push("an invalid body is dead-lettered (reason invalid)");
  return `${parts.join("; ")}.`;
}

/**
 * An AsyncAPI 3.0 document of an app: each queue a channel on its broker's server with the body's
 * JSON Schema and headers, received by the app; each dead-letter queue a channel the app sends to.
 */
export function asyncApiDocument(app: WQueue, options: { defaultBrokerUrl: BrokerSource; title: string; version: string }): Json {
  const brokers = new BrokerSet(options.defaultBrokerUrl, app.options.brokers);
  const servers: Json = {};
  const channels: Json = {};
  const operations: Json = {};
  const serverRef = (name: string) => {
    servers[idOf(name)] ??= serverOf(name, brokers.url(name));
    return { $ref: `#/servers/${idOf(name)}` };
  };
  for (const subscription of app.subscriptions) {
    const { queue, options: listen } = subscription;
    const brokerName = listen.broker ?? DEFAULT_BROKER_NAME;
    const id = idOf(brokerName === DEFAULT_BROKER_NAME ? queue : `${brokerName}-${queue}`);
    const contentType = CONTENT_TYPES[listen.decode ?? "json"];
    const channel = channelOf(queue);
    channels[id] = {
      ...channel,
      title: queue,
      servers: [serverRef(brokerName)],
      messages: {
        [id]: {
          name: queue,
          contentType,
          payload: payloadOf(subscription),
          headers: {
            type: "object",
            properties: { traceparent: { type: "string", description: "W3C trace context, when the producer traces" } },
            additionalProperties: { type: "string" },
          },
        },
      },
    };
    operations[`receive_${id}`] = {
      action: "receive",
      channel: { $ref: `#/channels/${id}` },
      messages: [{ $ref: `#/channels/${id}/messages/${id}` }],
      description: describeHandling(subscription),
    };

    const deadQueue = listen.deadLetterQueue ?? defaultDeadLetterQueue(queue);
    const deadId = `${id}_dead`;
    channels[deadId] = {
      ...(listen.deadLetterQueue === undefined ? { ...channel, address: defaultDeadLetterQueue(channel.address) } : { address: deadQueue }),
      title: `${queue}: dead letters`,
      description: `Messages of ${queue} that failed for good; \`wqueue dead-letters list|replay|purge ${queue}\`.`,
      servers: [serverRef(listen.deadLetterBroker ?? brokerName)],
      messages: {
        [deadId]: {
          name: deadQueue,
          contentType,
          payload: { description: `the original payload of ${queue}, byte for byte (an invalid or undecodable one too)` },
          headers: {
            type: "object",
            properties: Object.fromEntries(
              Object.entries(DEAD_LETTER_HEADERS).map(([name, description]) => [`${DEAD_HEADER_PREFIX}${name}`, { type: "string", description }]),
            ),
            required: [`${DEAD_HEADER_PREFIX}reason`, `${DEAD_HEADER_PREFIX}queue`],
            additionalProperties: { type: "string", description: "the original headers" },
          },
        },
      },
    };
    operations[`deadLetter_${id}`] = {
      action: "send",
      channel: { $ref: `#/channels/${deadId}` },
      messages: [{ $ref: `#/channels/${deadId}/messages/${deadId}` }],
      description: `The worker dead-letters messages of ${queue} here.`,
    };
  }
  return {
    asyncapi: "3.0.0",
    info: { title: options.title, version: options.version, description: "Generated by `wqueue asyncapi` from the app's subscriptions." },
    defaultContentType: "application/json",
    servers,
    channels,
    operations,
  };
}
