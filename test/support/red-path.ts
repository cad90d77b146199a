/**
 * The Node-RED runtime the node tests load: Node-RED 4.1 (`node-red`) by default, Node-RED 5
 * (the `node-red-5` alias) when TICK_NODE_RED=5 — test/node-red-5.test.ts runs the node tests that
 * way under Node 22.
 */
export function nodeRedPath(): string {
  return require.resolve(process.env.TICK_NODE_RED === "5" ? "node-red-5" : "node-red");
}
