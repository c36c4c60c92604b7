import { describe, expect, it } from "vitest";
import { unwrap, wrap } from "../../src/brokers/envelope.js";
import { createBroker } from "../../src/brokers/registry.js";
import { redactUrl } from "../../src/brokers/url.js";
import { parseKinesisUrl } from "../../src/brokers/kinesis/kinesis-url.js";
import { parseSqsUrl } from "../../src/brokers/sqs/sqs-url.js";

describe("redactUrl", () => {
  it("hides passwords and secret query values, keeps the rest", () => {
    expect(redactUrl("redis://:s3cret@host:6379/0")).toBe("redis://:***@host:6379/0");
    expect(redactUrl("amqp://guest:guest@127.0.0.1:5672/vh")).toBe("amqp://guest:***@127.0.0.1:5672/vh");
    expect(redactUrl("redis://127.0.0.1:6379?password=pw&mode=list")).toBe("redis://127.0.0.1:6379?password=***&mode=list");
    expect(redactUrl("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
    expect(redactUrl("not a url//user:pw@x")).not.toContain("pw@");
    // A URL inside a parameter hides its password too, and stays readable.
    expect(redactUrl("kinesis://AK:SECRET@h:4568?checkpoints=redis://:pw@127.0.0.1:6379/2&app=a")).toBe(
      "kinesis://AK:***@h:4568?checkpoints=redis://:***@127.0.0.1:6379/2&app=a",
    );
  });

  it("unknown schemes and bad options fail with the URL redacted", async () => {
    await expect(createBroker("foo://u:pw@h")).rejects.toThrow(/unknown scheme "foo".*available: memory, redis/);
    const bad = createBroker("kinesis://u:pw@h?checkpoints=redis://:secret@r&shards=0");
    await expect(bad).rejects.toThrow(/shards=0 must be a whole number from 1/);
    await expect(bad).rejects.not.toThrow(/pw|secret/);
    await expect(createBroker("kinesis://h?checkpoints=mysql://db")).rejects.toThrow(/must be a redis:\/\/, rediss:\/\/ or sqlite:\/\/ URL/);
  });
});

describe("envelope", () => {
  it("sends a plain message as its raw bytes", () => {
    expect(wrap({ body: Buffer.from("raw") }).toString()).toBe("raw");
    expect(unwrap(Buffer.from("raw"))).toMatchObject({ headers: {}, key: undefined, attempt: 1 });
  });

  it("round-trips headers, key and attempt", () => {
    const wrapped = wrap({ body: Buffer.from([0, 255]), headers: { a: "1" }, key: "k", attempt: 3 });
    const back = unwrap(wrapped);
    expect([...back.body]).toEqual([0, 255]);
    expect(back).toMatchObject({ headers: { a: "1" }, key: "k", attempt: 3 });
  });

  it("hands a broken envelope over raw instead of failing", () => {
    const broken = Buffer.from('{"__wqueue__":1,"b":');
    expect(unwrap(broken).body).toBe(broken);
  });
});

describe("AWS broker URLs (sqs://, kinesis://)", () => {
  it("a host means a local endpoint with dummy credentials; no host means AWS's own defaults", () => {
    expect(parseKinesisUrl("kinesis://127.0.0.1:4568")).toMatchObject({
      endpoint: "http://127.0.0.1:4568",
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
      app: "wqueue",
      checkpoints: "redis://127.0.0.1:6379",
      shards: 1,
    });
    expect(parseKinesisUrl("kinesis://")).toMatchObject({ endpoint: undefined, region: undefined, credentials: undefined });
    expect(parseSqsUrl("sqs://AK:S%2Fx@h:9324?tls=true&region=eu-west-1")).toMatchObject({
      endpoint: "https://h:9324",
      region: "eu-west-1",
      credentials: { accessKeyId: "AK", secretAccessKey: "S/x" },
    });
  });

  it("refuses unknown parameters, paths and half credentials, naming the redacted URL", () => {
    expect(() => parseKinesisUrl("kinesis://h?visibility=3")).toThrow(/unknown parameter visibility \(known: region, tls, app, checkpoints/);
    expect(() => parseSqsUrl("sqs://h/queue")).toThrow(/sqs:\/\/ URLs name no path; queues are named by the subscriptions/);
    expect(() => parseKinesisUrl("kinesis://AK@h")).toThrow(/give both access key id and secret \(kinesis:\/\/KEY:SECRET@host\)/);
    expect(() => parseKinesisUrl("kinesis://AK:SECRET@h?app=a%20b")).toThrow(/kinesis:\/\/AK:\*\*\*@h.*app=a b must be/);
  });
});
