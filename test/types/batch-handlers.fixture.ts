// Type fixture (checked by tsc in schema-bodies.test.ts, never run): with `batch`, the handler takes
// Message<Body>[] (with `schema`, Body is the schema's output), and may return { failed }.
import { expectTypeOf } from "vitest";
import { z } from "zod";
import { type BatchHandler, type Message, WQueue } from "../../src/index.js";

const app = new WQueue();
const Order = z.object({ id: z.string(), amount: z.number() });

app.listenEvents(
  "orders",
  async (messages) => {
    expectTypeOf(messages).toEqualTypeOf<Message<{ id: string; amount: number }>[]>();
    const total: number = messages.reduce((sum, m) => sum + m.body.amount, 0);
    // @ts-expect-error amount is a number
    messages[0]?.body.amount.toUpperCase();
    return { failed: messages.filter((m) => m.body.amount < 0).map((message) => ({ message, error: new Error(`negative ${total}`) })) };
  },
  { schema: Order, batch: { maxSize: 100, maxWaitMs: 50 } },
);

const handler = app.listenEvents("untyped", (messages) => {
  expectTypeOf(messages).toEqualTypeOf<Message<unknown>[]>();
}, { batch: {} });
expectTypeOf(handler).toEqualTypeOf<BatchHandler<unknown>>();

app.listenEvents<{ n: number }>("said", (messages) => {
  expectTypeOf(messages[0]?.body).toEqualTypeOf<{ n: number } | undefined>();
}, { batch: { maxSize: 10 } });

// @ts-expect-error a single-message handler cannot take a batch
app.listenEvents("single", (message: Message<unknown>) => message.body, { batch: { maxSize: 10 } });

app.listenEvents(
  "bad-result",
  () => ({ failed: ["not a message"] }),
  // @ts-expect-error failed lists { message, error } entries: no overload takes this handler
  { batch: { maxSize: 10 } },
);

// Without batch the handler still takes one message.
app.listenEvents("one", (message) => {
  expectTypeOf(message).toEqualTypeOf<Message<unknown>>();
});
