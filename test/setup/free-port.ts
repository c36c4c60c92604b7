import { type AddressInfo, createServer } from "node:net";

/** A port free on 127.0.0.1 right now (another process may take it before it is bound: retry then). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
