// divviup-ts's Prio3 sharding (VDAF-08) on given measurements, nonces and randomness, for
// tests/shells/test_dap_peer.py to compare byte for byte with the tray's own client.
//
// stdin:  {"vdaf": "count"|"sum"|"histogram", "bits", "length", "chunk_length",
//          "cases": [{"measurement": int, "nonce": hex, "rand": hex}, ...]}
// stdout: [{"public_share": hex, "input_shares": [hex, hex]}, ...]

import { Buffer } from "node:buffer";
import { text } from "node:stream/consumers";

import { makeVdaf, measurementFor } from "./vdaf.mjs";

const request = JSON.parse(await text(process.stdin));
const vdaf = makeVdaf({
  vdaf: request.vdaf,
  bits: request.bits,
  length: request.length,
  chunkLength: request.chunk_length,
});
const out = [];
for (const { measurement, nonce, rand } of request.cases) {
  const { publicShare, inputShares } = await vdaf.shardEncoded(
    measurementFor(vdaf, measurement),
    Buffer.from(nonce, "hex"),
    Buffer.from(rand, "hex"),
  );
  out.push({
    public_share: Buffer.from(publicShare).toString("hex"),
    input_shares: inputShares.map((share) => Buffer.from(share).toString("hex")),
  });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
