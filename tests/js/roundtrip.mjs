// Runs the official @elevenlabs/client against a callsid-resolver emulator, driven by
// tests/js/test_js_client.py over stdin/stdout (one JSON object per line).
//
//   node roundtrip.mjs <origin ws://host:port> <agent_id> <ws|native> [authorization]
//
// Prints {"event": "connected", ...} once the session is up, answers the client tool
// `lookup_order` with an object (the client stringifies it), and on the line "end" from stdin
// ends the session and prints {"event": "result", ...}.
import { createInterface } from "node:readline";
import { Conversation } from "@elevenlabs/client";

const [origin, agentId, impl, authorization] = process.argv.slice(2);
if (impl === "ws" || typeof globalThis.WebSocket === "undefined") {
  const { WebSocket } = await import("ws");
  globalThis.WebSocket = WebSocket;
}

const out = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const result = {
  event: "result",
  websocket: impl,
  messages: [],
  tool_calls: [],
  errors: [],
  pings: 0,
  disconnect: null,
};
let agentAnswered;
const answered = new Promise((resolve) => (agentAnswered = resolve));
const timeout = setTimeout(() => {
  out({ ...result, event: "timeout" });
  process.exit(3);
}, 20000);

try {
  const options = {
    agentId,
    origin,
    connectionType: "websocket",
    textOnly: true,
    clientTools: {
      lookup_order: async (parameters) => {
        result.tool_calls.push(parameters);
        return { order: parameters.order_id, status: "shipped" };
      },
    },
    onMessage: (message) => {
      result.messages.push({ source: message.source, role: message.role, text: message.message });
      if (message.source === "ai" || message.role === "agent") agentAnswered();
    },
    onPing: () => {
      result.pings += 1;
    },
    onError: (message, context) => result.errors.push({ message: String(message), context }),
    onDisconnect: (details) => {
      result.disconnect = details;
    },
  };
  if (authorization) options.authorization = authorization;
  const conversation = await Conversation.startSession(options);
  result.conversation_id = conversation.getId();
  result.subprotocol = conversation.connection?.socket?.protocol ?? null;
  out({ event: "connected", conversation_id: result.conversation_id });

  conversation.sendUserMessage("Where is my order?");
  await answered;
  conversation.sendContextualUpdate("CRM: the caller is a VIP customer");
  conversation.sendUserActivity();
  out({ event: "sent" });

  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === "end") break;
  }
  await conversation.endSession();
  clearTimeout(timeout);
  out(result);
  process.exit(0);
} catch (error) {
  clearTimeout(timeout);
  out({ ...result, event: "failed", error: String(error?.message ?? error), closeCode: error?.closeCode });
  process.exit(2);
}
