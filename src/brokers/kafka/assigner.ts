import { AssignerProtocol, type PartitionAssigner } from "kafkajs";

/**
 * Round-robin per topic among the members subscribed to it. Every queue of a worker is its own
 * group member (one kafkajs consumer per queue), so members of one group subscribe to different
 * topics; kafkajs's own round-robin assigns only the leader's topics, and to every member, so a
 * member could get partitions of a topic it never reads (and other topics none at all).
 */
const NAME = "WqueueSubscriptionRoundRobin";

export const SubscriptionRoundRobin: PartitionAssigner = ({ cluster }) => ({
  name: NAME,
  version: 1,

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
      memberIds.sort();
      const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId).sort((a, b) => a - b);
      partitions.forEach((partition, i) => {
        const assignment = plan.get(memberIds[i % memberIds.length] as string) as Record<string, number[]>;
        assignment[topic] = [...(assignment[topic] ?? []), partition];
      });
    }
    return [...plan].map(([memberId, assignment]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment, userData: Buffer.alloc(0) }),
    }));
  },

  protocol({ topics }) {
    return { name: NAME, metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) };
  },
});
