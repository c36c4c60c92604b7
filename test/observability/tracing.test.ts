import { randomUUID } from "node:crypto";
import { context, propagation, SpanKind, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, describe, expect, it } from "vitest";
import { WQueue } from "../../src/app/WQueue.js";
import { Worker } from "../../src/worker/Worker.js";
import { memoryLogger, waitFor } from "../helpers.js";

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
// What an OpenTelemetry SDK setup registers: a context manager (so context survives awaits),
// a tracer provider and the W3C propagator.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(provider);
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
});

describe("OpenTelemetry tracing", () => {
  it("writes traceparent on publish and runs the handler in a consumer span that continues the trace", async () => {
    const url = `memory://${randomUUID()}`;
    const app = new WQueue({ broker: url });
    const seen: { traceparent?: string; activeTrace?: string }[] = [];
    app.listenEvents("traced", (message) => {
      seen.push({ traceparent: message.headers.traceparent, activeTrace: trace.getActiveSpan()?.spanContext().traceId });
    });
    const worker = new Worker(app, { logger: memoryLogger().logger });
    await worker.start();

    const producerSpan = trace.getTracer("test").startSpan("produce");
    await context.with(trace.setSpan(context.active(), producerSpan), () => app.publish("traced", { n: 1 }));
    producerSpan.end();
    await waitFor("the handler", () => seen.length === 1);
    await worker.stop(1000);

    const { traceId, spanId } = producerSpan.spanContext();
    expect(seen[0]?.traceparent).toBe(`00-${traceId}-${spanId}-01`);
    expect(seen[0]?.activeTrace).toBe(traceId);
    const consumer = exporter.getFinishedSpans().find((span) => span.name === "traced process");
    expect(consumer?.kind).toBe(SpanKind.CONSUMER);
    expect(consumer?.spanContext().traceId).toBe(traceId);
    expect(consumer?.parentSpanContext?.spanId).toBe(spanId);
    expect(consumer?.attributes["messaging.destination.name"]).toBe("traced");
  });
});
