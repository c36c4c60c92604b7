import { ensureElasticmq } from "./setup/ensure-elasticmq.js";
import { ensureKafka } from "./setup/ensure-kafka.js";
import { ensureKinesis } from "./setup/ensure-kinesis.js";
import { ensureMosquitto } from "./setup/ensure-mosquitto.js";
import { ensureNats } from "./setup/ensure-nats.js";
import { ensurePostgres } from "./setup/ensure-postgres.js";
import { ensureRabbitmq } from "./setup/ensure-rabbitmq.js";
import { ensureRedis } from "./setup/ensure-redis.js";

/** Runs once before the suite: every broker the tests use must answer, started here if needed. */
export default async function setup(): Promise<void> {
  await Promise.all([ensureRedis(), ensureRabbitmq(), ensureKafka(), ensureElasticmq(), ensureNats(), ensureKinesis(), ensurePostgres(), ensureMosquitto()]);
}
