// The seed's example: print every message that arrives on `my_queue`.
//   npx wqueue worker -a example/example_usage.ts --broker redis://127.0.0.1:6379
//   redis-cli RPUSH my_queue '{"hello":1}'
import { type Message, WQueue } from "wqueue";

export const app = new WQueue();

export function message_handler(message: Message): void {
  console.log(`message on ${message.queue}:`, message.body);
}

app.listenEvents("my_queue", message_handler);
