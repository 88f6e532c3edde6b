// The VDAF-08 side of tests/support/node_dap: divviup-ts's Prio3 instances, and what divviup-ts
// leaves to its caller: decoding the wire forms of input shares, public shares and prep shares
// (draft-irtf-cfrg-vdaf-08, "Message Serialization" of Prio3). Used by aggregator.mjs and shard.mjs.

import { Buffer } from "node:buffer";

import { Prio3Count, Prio3Histogram, Prio3Sum } from "@divviup/prio3";
import { XofTurboShake128 } from "@divviup/xof";

export const SEED_SIZE = XofTurboShake128.seedSize; // 16 in VDAF-08
const USAGE_MEASUREMENT_SHARE = 1;
const USAGE_PROOF_SHARE = 2;

export class Malformed extends Error {}

/** A Prio3 instance for two aggregators from {vdaf: "count" | "sum" | "histogram", bits, length, chunkLength}. */
export function makeVdaf({ vdaf, bits, length, chunkLength }) {
  switch (vdaf) {
    case "count":
      return new Prio3Count({ shares: 2 });
    case "sum":
      return new Prio3Sum({ shares: 2, bits: positive("bits", bits) });
    case "histogram":
      return new Prio3Histogram({
        shares: 2,
        length: positive("length", length),
        chunkLength: positive("chunk length", chunkLength),
      });
    default:
      throw new Error(`unknown VDAF ${JSON.stringify(vdaf)} (count, sum or histogram)`);
  }
}

function positive(what, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`the ${what} must be a positive integer, not ${value}`);
  return n;
}

/** A measurement as divviup-ts takes it: Count a boolean, Sum and Histogram an integer. */
export function measurementFor(vdaf, value) {
  return vdaf.id === 0 ? Boolean(value) : Number(value);
}

function usesJointRand(vdaf) {
  return vdaf.flp.jointRandLen > 0;
}

function decodeElements(vdaf, bytes, what) {
  try {
    return vdaf.flp.field.decode(bytes);
  } catch (error) {
    throw new Malformed(`${what}: ${error.message}`);
  }
}

/** Prio3's public share: the two joint randomness parts (16 bytes each) when the circuit uses
 * joint randomness (Sum, Histogram), else nothing. A fresh array each time: prepareInit writes
 * the aggregator's own part into it. */
export function decodePublicShare(vdaf, bytes) {
  const expected = usesJointRand(vdaf) ? 2 * SEED_SIZE : 0;
  if (bytes.length !== expected) {
    throw new Malformed(`the public share is ${bytes.length} bytes, not ${expected}`);
  }
  const jointRandParts = [];
  for (let at = 0; at < expected; at += SEED_SIZE) {
    jointRandParts.push(Buffer.from(bytes.subarray(at, at + SEED_SIZE)));
  }
  return { jointRandParts };
}

/** An input share as prepareInit takes it. The leader's (aggregator 0) is its measurement share
 * and proof share as field elements, then its blind; the helper's (aggregator 1) is a measurement
 * seed, a proof seed and a blind, which it expands with the XOF as the draft's
 * `helper_meas_share`/`helper_proofs_share` do. */
export async function decodeInputShare(vdaf, aggregatorId, bytes) {
  const { field, measurementLen, proofLen } = vdaf.flp;
  const proofsLen = proofLen * vdaf.proofs;
  const blindLen = usesJointRand(vdaf) ? SEED_SIZE : 0;
  if (aggregatorId === 0) {
    const measBytes = measurementLen * field.encodedSize;
    const proofBytes = proofsLen * field.encodedSize;
    const expected = measBytes + proofBytes + blindLen;
    if (bytes.length !== expected) {
      throw new Malformed(`the leader's input share is ${bytes.length} bytes, not ${expected}`);
    }
    return {
      measurementShare: decodeElements(vdaf, bytes.subarray(0, measBytes), "the leader's measurement share"),
      proofsShare: decodeElements(vdaf, bytes.subarray(measBytes, measBytes + proofBytes), "the leader's proof share"),
      blind: Buffer.from(bytes.subarray(measBytes + proofBytes)),
    };
  }
  const expected = 2 * SEED_SIZE + blindLen;
  if (bytes.length !== expected) {
    throw new Malformed(`the helper's input share is ${bytes.length} bytes, not ${expected}`);
  }
  const measurementSeed = bytes.subarray(0, SEED_SIZE);
  const proofSeed = bytes.subarray(SEED_SIZE, 2 * SEED_SIZE);
  return {
    measurementShare: await XofTurboShake128.expandIntoVec(
      field,
      measurementSeed,
      vdaf.domainSeparationTag(USAGE_MEASUREMENT_SHARE),
      Buffer.of(aggregatorId),
      measurementLen,
    ),
    proofsShare: await XofTurboShake128.expandIntoVec(
      field,
      proofSeed,
      vdaf.domainSeparationTag(USAGE_PROOF_SHARE),
      Buffer.of(vdaf.proofs, aggregatorId),
      proofsLen,
    ),
    blind: Buffer.from(bytes.subarray(2 * SEED_SIZE)),
  };
}

/** A prep share: the verifier share as field elements, then the joint randomness part. */
export function decodePrepShare(vdaf, bytes) {
  const { field, verifierLen } = vdaf.flp;
  const verifierBytes = verifierLen * vdaf.proofs * field.encodedSize;
  const expected = verifierBytes + (usesJointRand(vdaf) ? SEED_SIZE : 0);
  if (bytes.length !== expected) throw new Malformed(`the prep share is ${bytes.length} bytes, not ${expected}`);
  return {
    verifiersShare: decodeElements(vdaf, bytes.subarray(0, verifierBytes), "the verifier share"),
    jointRandomnessPart: Buffer.from(bytes.subarray(verifierBytes)),
  };
}

/** A prep message: the joint randomness seed, or nothing (Count). */
export function decodePrepMessage(vdaf, bytes) {
  const expected = usesJointRand(vdaf) ? SEED_SIZE : 0;
  if (bytes.length !== expected) throw new Malformed(`the prep message is ${bytes.length} bytes, not ${expected}`);
  return { jointRand: Buffer.from(bytes) };
}
