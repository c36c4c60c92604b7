// Type fixture (checked by tsc in schema-bodies.test.ts, never run): with `schema`, message.body is
// the schema's output type. Each @ts-expect-error fails the check if the body widens to any/unknown.
import { expectTypeOf } from "vitest";
import { z } from "zod";
import { type Message, WQueue } from "../../src/index.js";

const app = new WQueue();
const Order = z.object({ id: z.string(), amount: z.number(), note: z.string().optional() });
// A transform: the body is the output type, not the input.
const Cents = z.object({ euros: z.number() }).transform(({ euros }) => ({ cents: Math.round(euros * 100) }));

app.listenEvents(
  "orders",
  async (message) => {
    expectTypeOf(message.body).toEqualTypeOf<{ id: string; amount: number; note?: string | undefined }>();
    const total: number = message.body.amount * 2;
    // @ts-expect-error amount is a number
    message.body.amount.toUpperCase();
    // @ts-expect-error no such field
    message.body.missing;
    return total;
  },
  { schema: Order, concurrency: 2 },
);

const handler = app.listenEvents("payments", (message) => message.body.cents, { schema: Cents });
expectTypeOf(handler).parameter(0).toEqualTypeOf<Message<{ cents: number }>>();

// Without a schema the body stays unknown, or is what the caller says it is.
app.listenEvents("raw", (message) => {
  expectTypeOf(message.body).toBeUnknown();
  // @ts-expect-error unknown has no fields
  message.body.amount;
});
app.listenEvents<{ n: number }>("said", (message) => {
  expectTypeOf(message.body).toEqualTypeOf<{ n: number }>();
});

class Handlers {
  @app.listen("decorated", { schema: Order })
  async handle(message: Message<z.infer<typeof Order>>) {
    return message.body.amount;
  }

  // @ts-expect-error the method's body type does not match the schema's output
  @app.listen("decorated-wrong", { schema: Order })
  async wrong(message: Message<{ amount: string }>) {
    return message.body.amount;
  }

  @app.listen("decorated-untyped")
  async untyped(message: Message<{ anything: boolean }>) {
    return message.body.anything;
  }
}
new Handlers();

// A typed queue handle: publish() takes the schema's input, listen() gets its output.
const payments = app.queue("typed-payments", { schema: Cents });
void payments.publish({ euros: 12.5 });
// @ts-expect-error the input is { euros: number }, not the output
void payments.publish({ cents: 1250 });
payments.listen((message) => {
  expectTypeOf(message.body).toEqualTypeOf<{ cents: number }>();
});
const untyped = app.queue("untyped");
void untyped.publish("anything");
untyped.listen((message) => expectTypeOf(message.body).toBeUnknown());
