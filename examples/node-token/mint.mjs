// A game's backend mints a create token for the browser that will host a
// room (npm install jsonwebtoken). The relay has the same
// CREATE_TOKEN_SECRET; the browser never sees it, only this token, which
// lasts five minutes and allows one create of at most maxClients.
//
//   CREATE_TOKEN_SECRET=... node mint.mjs 8 https://game.example quiz
import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";

export function createToken({ maxClients = 8, origin, game } = {}) {
  const claims = { maxClients, ...(origin && { origin }), ...(game && { sub: game }) };
  // A fresh jwtid: the relay spends a token by its jti, and two tokens
  // signed in the same second with the same claims would otherwise be one.
  return jwt.sign(claims, process.env.CREATE_TOKEN_SECRET, { algorithm: "HS256", expiresIn: "5m", jwtid: randomUUID() });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [maxClients, origin, game] = process.argv.slice(2);
  console.log(createToken({ maxClients: Number(maxClients || 8), origin, game }));
}
