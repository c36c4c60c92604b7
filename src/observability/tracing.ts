import type { Headers } from "../brokers/contract.js";
import type { Outcome } from "../pipeline/outcome.js";

/**
 * OpenTelemetry, when the app installed @opentelemetry/api: one CONSUMER span per message, child
 * of the W3C `traceparent` in its headers, and `traceparent` written into published headers.
 * Without the package nothing is loaded and the per-message path has one `undefined` check.
 */
export interface MessageTracer {
  /** Runs `handle` inside a consumer span for the message. */
  consume(message: { queue: string; id: string; attempt: number; headers: Readonly<Headers> }, handle: () => Promise<Outcome>): Promise<Outcome>;
  /** Adds the active trace context to outgoing headers. */
  inject(headers: Headers): void;
}

type OtelApi = typeof import("@opentelemetry/api");

let loading: Promise<MessageTracer | undefined> | undefined;

/**
 * The tracer, or undefined when @opentelemetry/api is not installed or no SDK registered a tracer
 * provider (the API alone only makes no-op spans: not worth their cost per message). Register the
 * SDK before the worker starts, e.g. at the top of the app module. Loaded once.
 */
export function loadTracer(): Promise<MessageTracer | undefined> {
  loading ??= import("@opentelemetry/api").then(
    (api: OtelApi) => (hasSdk(api) ? createTracer(api) : undefined),
    () => undefined,
  );
  return loading;
}

function hasSdk(api: OtelApi): boolean {
  const provider = api.trace.getTracerProvider() as { getDelegate?: () => object };
  const delegate = provider.getDelegate?.() ?? provider;
  return delegate.constructor.name !== "NoopTracerProvider";
}

function createTracer(api: OtelApi): MessageTracer {
  const tracer = api.trace.getTracer("wqueue");
  return {
    consume(message, handle) {
      const parent = api.propagation.extract(api.ROOT_CONTEXT, message.headers);
      const span = tracer.startSpan(
        `${message.queue} process`,
        {
          kind: api.SpanKind.CONSUMER,
          attributes: {
            "messaging.operation.type": "process",
            "messaging.destination.name": message.queue,
            "messaging.message.id": message.id,
            "wqueue.attempt": message.attempt,
          },
        },
        parent,
      );
      return api.context.with(api.trace.setSpan(parent, span), handle).then(
        (outcome) => {
          if (outcome.type !== "ack") {
            const error = outcome.type === "retry" ? outcome.error : outcome.reason.error;
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: error ? `${error.name}: ${error.message}` : outcome.type });
            span.setAttribute("wqueue.outcome", outcome.type);
          }
          span.end();
          return outcome;
        },
        (error: unknown) => {
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: String(error) });
          span.end();
          throw error;
        },
      );
    },
    inject(headers) {
      api.propagation.inject(api.context.active(), headers);
    },
  };
}
