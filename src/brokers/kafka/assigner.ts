import { AssignerProtocol, type PartitionAssigner } from "kafkajs";

/**
 * Kafka's standard "range" assignment, under the protocol name the Java client (RangeAssignor, in
 * its default list) and librdkafka (default "range,roundrobin", so kcat and confluent-kafka too)
 * also speak: any of them can join a wqueue group, and a group can move to or from wqueue in a
 * rolling deploy. Members send the standard ConsumerProtocol subscription (kafkajs encodes it).
 *
 * Per topic, among the members subscribed to it, sorted by member id: each gets a contiguous range,
 * the first `partitions % members` one partition more. Every queue of a worker is its own group
 * member (one kafkajs consumer per queue), so members of one group subscribe to different topics;
 * kafkajs's own assigners give the leader's topics to every member, so a member could get
 * partitions of a topic it never reads (and other topics none at all).
 *
 * The same assignment is also offered under the name earlier wqueue versions used, second, so
 * their workers and these agree on a protocol during an upgrade (the name is all a group checks).
 */
export const RANGE = "range";
const EARLIER_NAME = "WqueueSubscriptionRoundRobin";

const subscriptionRange =
  (name: string): PartitionAssigner =>
  ({ cluster }) => ({
    name,
    version: 0,

    async assign({ members }) {
      const subscribers = new Map<string, string[]>();
      for (const { memberId, memberMetadata } of members) {
        for (const topic of AssignerProtocol.MemberMetadata.decode(memberMetadata)?.topics ?? []) {
          subscribers.set(topic, [...(subscribers.get(topic) ?? []), memberId]);
        }
      }
      // The leader's metadata covers its own topics only: load the others' before counting partitions.
      await cluster.addMultipleTargetTopics([...subscribers.keys()]);
      const plan = new Map<string, Record<string, number[]>>(members.map(({ memberId }) => [memberId, {}]));
      for (const [topic, memberIds] of subscribers) {
        const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId).sort((a, b) => a - b);
        for (const [memberId, range] of rangeSplit(memberIds, partitions)) {
          if (range.length > 0) (plan.get(memberId) as Record<string, number[]>)[topic] = range;
        }
      }
      return [...plan].map(([memberId, assignment]) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment, userData: Buffer.alloc(0) }),
      }));
    },

    protocol({ topics }) {
      return { name, metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
    },
  });

/** Java's RangeAssignor for one topic: contiguous ranges by sorted member id, the first ones one longer. */
export function rangeSplit(memberIds: readonly string[], partitions: readonly number[]): Map<string, number[]> {
  const members = [...memberIds].sort();
  const each = Math.floor(partitions.length / members.length);
  const longer = partitions.length % members.length;
  return new Map(
    members.map((memberId, i) => {
      const start = each * i + Math.min(i, longer);
      return [memberId, partitions.slice(start, start + each + (i < longer ? 1 : 0))];
    }),
  );
}

/** In order of preference. */
export const GROUP_ASSIGNERS: PartitionAssigner[] = [subscriptionRange(RANGE), subscriptionRange(EARLIER_NAME)];
