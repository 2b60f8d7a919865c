// A game's backend mints a create token for the browser that will host a
// room (npm install jsonwebtoken). The relay has the same
// CREATE_TOKEN_SECRET; the browser never sees it, only this token, which
// lasts five minutes and allows one create of at most maxClients.
//
//   CREATE_TOKEN_SECRET=... node mint.mjs 8 https://game.example quiz
import jwt from "jsonwebtoken";

export function createToken({ maxClients = 8, origin, game } = {}) {
  const claims = { maxClients, ...(origin && { origin }), ...(game && { sub: game }) };
  return jwt.sign(claims, process.env.CREATE_TOKEN_SECRET, { algorithm: "HS256", expiresIn: "5m" });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [maxClients, origin, game] = process.argv.slice(2);
  console.log(createToken({ maxClients: Number(maxClients || 8), origin, game }));
}
