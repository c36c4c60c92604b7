import { describe, expect, it } from "vitest";
import type { Message, Middleware } from "../../src/app/types.js";
import { compose, type Step } from "../../src/dispatch/steps/step.js";
import type { Delivery } from "../../src/brokers/contract.js";
import { withMiddleware } from "../../src/pipeline/compose-middleware.js";

const message = { id: "m1" } as unknown as Message<never>;

describe("withMiddleware", () => {
  it("returns the handler itself when there is no middleware (a sync handler stays sync)", () => {
    const handler = () => 42;
    expect(withMiddleware([], handler)).toBe(handler);
  });

  it("runs the first middleware outermost, code after next() in reverse order", async () => {
    const seen: string[] = [];
    const tag =
      (name: string): Middleware =>
      async (_m, next) => {
        seen.push(`${name} in`);
        await next();
        seen.push(`${name} out`);
      };
    await withMiddleware([tag("a"), tag("b")], () => void seen.push("handler"))(message);
    expect(seen).toEqual(["a in", "b in", "handler", "b out", "a out"]);
  });

  it("skips the handler when a middleware does not call next()", async () => {
    let ran = false;
    await withMiddleware([async () => {}], () => {
      ran = true;
    })(message);
    expect(ran).toBe(false);
  });

  it("lets a middleware see the handler's error and replace it", async () => {
    class Converted extends Error {
      override name = "Converted";
    }
    const convert: Middleware = async (_m, next) => {
      try {
        await next();
      } catch (error) {
        throw new Converted(`from ${(error as Error).message}`);
      }
    };
    await expect(
      withMiddleware([convert], () => {
        throw new Error("sync throw");
      })(message),
    ).rejects.toMatchObject({ name: "Converted", message: "from sync throw" });
  });

  it("refuses next() called twice", async () => {
    await expect(withMiddleware([async (_m, next) => { await next(); await next(); }], () => {})(message)).rejects.toThrow(
      "a middleware called next() more than once",
    );
  });
});

describe("dispatch steps: compose", () => {
  it("nests steps first-outermost and stays synchronous when every step is", () => {
    const order: string[] = [];
    const step =
      (name: string): Step =>
      (next) =>
      (delivery, signal) => {
        order.push(name);
        return next(delivery, signal);
      };
    const chain = compose([step("outer"), step("inner")], () => ({ type: "ack" }));
    const result = chain({} as Delivery, new AbortController().signal);
    expect(result).toEqual({ type: "ack" });
    expect(result).not.toBeInstanceOf(Promise);
    expect(order).toEqual(["outer", "inner"]);
  });
});
