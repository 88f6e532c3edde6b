// One DAP-09 aggregator, the leader or the helper, built on divviup-ts (@divviup/prio3, VDAF-08)
// and @hpke/core, for tests/shells/test_dap_peer.py (started by tests/support/dap_aggregators.py).
// It listens on 127.0.0.1 only and keeps everything in memory. docs/dap.md, "The independent peer",
// says which parts are DAP-09 and which are test-only.
//
//   node aggregator.mjs --role leader|helper --task-id B64URL --vdaf count|sum|histogram
//        [--bits N] [--length N --chunk-length N] --verify-key HEX [--port 0] [--config-id N]
//        [--helper http://127.0.0.1:PORT] (leader) [--unsupported-first]
//
// Once it listens it prints one line of JSON to stdout: {"role", "port", "config_id"}. Its log goes
// to stderr.
//
// DAP-09 (draft-ietf-ppm-dap-09), as specified:
//   GET  /hpke_config                          HpkeConfigList, application/dap-hpke-config-list
//   PUT  /tasks/{task-id}/reports              (leader) Report, application/dap-report -> 201
//   PUT  /tasks/{task-id}/aggregation_jobs/{id} (helper) AggregationJobInitReq -> AggregationJobResp
// Test-only (no authentication, plaintext aggregate shares, no collection jobs):
//   POST /internal/collect                     (leader) aggregates every report not yet collected
//   POST /internal/aggregate_share             (helper) its aggregate share for {report_count, checksum}
//   GET  /internal/shares                      what this aggregator alone holds, per report

import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { parseArgs } from "node:util";

import { Aes128Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from "@hpke/core";
import { DhkemX25519HkdfSha256 } from "@hpke/dhkem-x25519";

import {
  Malformed,
  decodeInputShare,
  decodePrepMessage,
  decodePrepShare,
  decodePublicShare,
  makeVdaf,
} from "./vdaf.mjs";

const { values: args } = parseArgs({
  options: {
    role: { type: "string" },
    port: { type: "string", default: "0" },
    "task-id": { type: "string" },
    vdaf: { type: "string" },
    bits: { type: "string" },
    length: { type: "string" },
    "chunk-length": { type: "string" },
    "verify-key": { type: "string" },
    "config-id": { type: "string" },
    helper: { type: "string" },
    "unsupported-first": { type: "boolean", default: false },
  },
});

const ROLE = args.role;
if (ROLE !== "leader" && ROLE !== "helper") throw new Error("--role is leader or helper");
const IS_LEADER = ROLE === "leader";
const AGGREGATOR_ID = IS_LEADER ? 0 : 1;
const SERVER_ROLE = IS_LEADER ? 0x02 : 0x03; // DAP-09 "Role"; 0x01 is the client
const TASK_ID_B64 = args["task-id"];
const TASK_ID = Buffer.from(TASK_ID_B64 ?? "", "base64url");
if (TASK_ID.length !== 32 || TASK_ID.toString("base64url") !== TASK_ID_B64) {
  throw new Error("--task-id is 32 bytes in unpadded URL-safe base64");
}
const VERIFY_KEY = Buffer.from(args["verify-key"] ?? "", "hex");
const vdaf = makeVdaf({
  vdaf: args.vdaf,
  bits: args.bits,
  length: args.length,
  chunkLength: args["chunk-length"],
});
if (VERIFY_KEY.length !== vdaf.verifyKeySize) throw new Error(`--verify-key is ${vdaf.verifyKeySize} bytes in hex`);
if (IS_LEADER && !args.helper) throw new Error("the leader needs --helper");
const HELPER = args.helper?.replace(/\/+$/, "");

const PROBLEM = "urn:ietf:params:ppm:dap:error:";
const MEDIA = {
  hpkeConfigList: "application/dap-hpke-config-list",
  report: "application/dap-report",
  aggregationJobInitReq: "application/dap-aggregation-job-init-req",
  aggregationJobResp: "application/dap-aggregation-job-resp",
};
const TIME_INTERVAL = 1; // DAP-09 QueryType
const PREPARE_RESP = { continue: 0, finished: 1, reject: 2 };
const PING_PONG = { initialize: 0, continue: 1, finish: 2 }; // VDAF-08 ping-pong MessageType
const PREPARE_ERRORS = [
  "batch_collected",
  "report_replayed",
  "report_dropped",
  "hpke_unknown_config_id",
  "hpke_decrypt_error",
  "vdaf_prep_error",
  "batch_saturated",
  "task_expired",
  "invalid_message",
  "report_too_early",
];
const prepareError = (name) => PREPARE_ERRORS.indexOf(name);

// ---------------------------------------------------------------------------------------------
// HPKE: DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, a fresh key pair per process

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
const keyPair = await suite.kem.generateKeyPair();
const CONFIG_ID = Number(args["config-id"] ?? (IS_LEADER ? 1 : 2));
const hpkeConfigs = [
  hpkeConfig(CONFIG_ID, 0x0020, 0x0001, 0x0001, Buffer.from(await suite.kem.serializePublicKey(keyPair.publicKey))),
];
if (args["unsupported-first"]) {
  // A real DHKEM(P-256) key first, in the place of preference: a DAP-09 client that supports
  // only X25519 must skip it. Nothing here can open what is sealed to it.
  const p256 = new DhkemP256HkdfSha256();
  const other = await p256.generateKeyPair();
  const publicKey = Buffer.from(await p256.serializePublicKey(other.publicKey));
  hpkeConfigs.unshift(hpkeConfig((CONFIG_ID + 1) % 256, 0x0010, 0x0001, 0x0001, publicKey));
}

function hpkeConfig(id, kem, kdf, aead, publicKey) {
  return Buffer.concat([u8(id), u16(kem), u16(kdf), u16(aead), vec16(publicKey)]);
}

/** OpenBase with DAP-09's info and InputShareAad; the PlaintextInputShare's payload, or null. */
async function openInputShare(metadata, publicShare, ciphertext) {
  const info = Buffer.concat([Buffer.from("dap-09 input share"), u8(0x01), u8(SERVER_ROLE)]);
  const aad = Buffer.concat([TASK_ID, metadata, vec32(publicShare)]);
  let plaintext;
  try {
    plaintext = Buffer.from(
      await suite.open({ recipientKey: keyPair.privateKey, enc: ciphertext.enc, info }, ciphertext.payload, aad),
    );
  } catch {
    return null;
  }
  const reader = new Reader(plaintext, "the plaintext input share");
  const extensions = reader.vector(2);
  const payload = reader.vector(4);
  reader.end();
  if (extensions.length) throw new Malformed("the input share has extensions this aggregator does not know");
  return payload;
}

// ---------------------------------------------------------------------------------------------
// TLS presentation syntax (RFC 8446 §3), as DAP-09 uses it

function u8(n) {
  return Buffer.of(n);
}
function u16(n) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function vec16(data) {
  return Buffer.concat([u16(data.length), data]);
}
function vec32(data) {
  return Buffer.concat([u32(data.length), data]);
}

class Reader {
  constructor(data, what) {
    this.data = data;
    this.at = 0;
    this.what = what;
  }
  get done() {
    return this.at === this.data.length;
  }
  take(n) {
    if (this.at + n > this.data.length) throw new Malformed(`${this.what} ends early (${n} bytes needed at ${this.at})`);
    const out = this.data.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  uint(size) {
    return this.take(size).readUIntBE(0, size);
  }
  vector(lengthSize) {
    return this.take(this.uint(lengthSize));
  }
  end() {
    if (!this.done) throw new Malformed(`${this.data.length - this.at} bytes follow the end of ${this.what}`);
  }
}

/** ReportMetadata { ReportID report_id[16]; Time time (u64) }, kept as its bytes. */
function readMetadata(reader) {
  const metadata = reader.take(24);
  return { metadata, reportId: Buffer.from(metadata.subarray(0, 16)), time: metadata.readBigUInt64BE(16) };
}

/** HpkeCiphertext { u8 config_id; opaque enc<1..2^16-1>; opaque payload<1..2^32-1> }. */
function readCiphertext(reader, what) {
  const start = reader.at;
  const configId = reader.uint(1);
  const enc = reader.vector(2);
  const payload = reader.vector(4);
  if (!enc.length || !payload.length) throw new Malformed(`${what} has an empty enc or payload`);
  return { configId, enc, payload, encoded: Buffer.from(reader.data.subarray(start, reader.at)) };
}

// ---------------------------------------------------------------------------------------------
// State: every report this aggregator has seen, by report id (hex)

const reports = new Map();
const refusedAtUpload = []; // leader: {report_id, error} of reports it answered with an error

function record(reportId, fields) {
  const key = reportId.toString("hex");
  const entry = { reportId, status: "received", error: null, collected: false, ...reports.get(key), ...fields };
  reports.set(key, entry);
  return entry;
}

const decimal = (vector) => (vector ? vector.map(String) : null);

function checksum(ids) {
  const sum = Buffer.alloc(32);
  for (const id of ids) {
    const digest = createHash("sha256").update(id).digest();
    for (let i = 0; i < 32; i++) sum[i] ^= digest[i];
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// The leader

async function upload(taskId, req, body) {
  if (taskId !== TASK_ID_B64) return problem(404, "unrecognizedTask", "no such task");
  if (mediaType(req) !== MEDIA.report) return problem(415, "invalidMessage", `the body must be ${MEDIA.report}`);
  let metadata, reportId, publicShare, leaderShare, helperShare;
  try {
    const reader = new Reader(body, "the report");
    ({ metadata, reportId } = readMetadata(reader));
    publicShare = Buffer.from(reader.vector(4));
    leaderShare = readCiphertext(reader, "the leader's encrypted input share");
    helperShare = readCiphertext(reader, "the helper's encrypted input share");
    reader.end();
  } catch (error) {
    if (error instanceof Malformed) return problem(400, "invalidMessage", error.message);
    throw error;
  }
  const refuse = (status, type, detail) => {
    refusedAtUpload.push({ report_id: reportId.toString("hex"), error: type, detail });
    return problem(status, type, detail);
  };
  if (leaderShare.configId !== CONFIG_ID) {
    return refuse(400, "outdatedConfig", `no HPKE configuration ${leaderShare.configId} here (it is ${CONFIG_ID})`);
  }
  if (reports.has(reportId.toString("hex"))) return refuse(400, "reportRejected", "a report with this id was uploaded before");
  let inputShare, jointRandParts;
  try {
    const payload = await openInputShare(metadata, publicShare, leaderShare);
    if (payload === null) {
      return refuse(400, "reportRejected", "the leader's input share does not decrypt (hpke_decrypt_error)");
    }
    inputShare = await decodeInputShare(vdaf, AGGREGATOR_ID, payload);
    ({ jointRandParts } = decodePublicShare(vdaf, publicShare));
  } catch (error) {
    if (error instanceof Malformed) return refuse(400, "invalidMessage", error.message);
    throw error;
  }
  record(reportId, { metadata, publicShare, jointRandParts, helperShare, inputShare, status: "uploaded" });
  return { status: 201 };
}

async function collect() {
  const batch = [...reports.values()].filter((entry) => entry.status === "uploaded");
  // ping_pong_leader_init: prepareInit as aggregator 0, outbound = initialize(prep share)
  const inits = [];
  for (const entry of batch) {
    try {
      const { preparationState, preparationShare } = await vdaf.prepareInit(
        VERIFY_KEY,
        AGGREGATOR_ID,
        null,
        entry.reportId,
        { jointRandParts: [...entry.jointRandParts] },
        entry.inputShare,
      );
      entry.state = preparationState;
      const outbound = Buffer.concat([u8(PING_PONG.initialize), vec32(vdaf.encodePreparationShare(preparationShare))]);
      inits.push({ entry, outbound });
    } catch (error) {
      Object.assign(entry, { status: "rejected", error: "vdaf_prep_error", by: "leader", detail: error.message });
    }
  }
  if (inits.length) await aggregationJob(inits);
  const finished = batch.filter((entry) => entry.status === "finished");
  const ids = finished.map((entry) => entry.reportId);
  const response = await fetch(`${HELPER}/internal/aggregate_share`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ report_count: ids.length, checksum: checksum(ids).toString("hex") }),
  });
  if (response.status !== 200) {
    return problem(502, "batchMismatch", `the helper answered ${response.status}: ${await response.text()}`);
  }
  const helper = await response.json();
  const helperAggregate = helper.aggregate_share.map(BigInt);
  const leaderAggregate = vdaf.aggregate(
    null,
    finished.map((entry) => entry.outputShare),
  );
  const result = vdaf.unshard(null, [leaderAggregate, helperAggregate], ids.length);
  for (const entry of batch) entry.collected = true;
  return json(200, {
    report_count: ids.length,
    result: Array.isArray(result) ? result.map(String) : String(result),
    leader_aggregate_share: decimal(leaderAggregate),
    helper_aggregate_share: helper.aggregate_share,
    rejected: batch
      .filter((entry) => entry.status === "rejected")
      .map((entry) => ({ report_id: entry.reportId.toString("hex"), by: entry.by, error: entry.error })),
    refused_at_upload: refusedAtUpload.splice(0),
  });
}

/** PUT {helper}/tasks/{task-id}/aggregation_jobs/{id} with an AggregationJobInitReq, then
 * ping_pong_leader_continued on each PrepareResp. */
async function aggregationJob(inits) {
  const prepareInits = inits.map(({ entry, outbound }) =>
    Buffer.concat([entry.metadata, vec32(entry.publicShare), entry.helperShare.encoded, vec32(outbound)]),
  );
  const body = Buffer.concat([vec32(Buffer.alloc(0)), u8(TIME_INTERVAL), vec32(Buffer.concat(prepareInits))]);
  const jobId = randomBytes(16).toString("base64url");
  const response = await fetch(`${HELPER}/tasks/${TASK_ID_B64}/aggregation_jobs/${jobId}`, {
    method: "PUT",
    headers: { "content-type": MEDIA.aggregationJobInitReq },
    body,
  });
  const answer = Buffer.from(await response.arrayBuffer());
  if (response.status !== 201 || response.headers.get("content-type") !== MEDIA.aggregationJobResp) {
    throw new Error(`the helper answered the aggregation job with ${response.status}: ${answer}`);
  }
  const reader = new Reader(answer, "the AggregationJobResp");
  const list = new Reader(reader.vector(4), "the prepare responses");
  reader.end();
  for (const { entry } of inits) {
    const reportId = list.take(16);
    if (!reportId.equals(entry.reportId)) throw new Error("the helper's responses are not in the job's order");
    const state = list.uint(1);
    if (state === PREPARE_RESP.reject) {
      const code = list.uint(1);
      Object.assign(entry, { status: "rejected", by: "helper", error: PREPARE_ERRORS[code] ?? `error ${code}` });
    } else if (state === PREPARE_RESP.continue) {
      const inbound = new Reader(list.vector(4), "the helper's ping-pong message");
      try {
        // ping_pong_leader_continued: the helper's finish(prep_msg) ends this one-round VDAF
        if (inbound.uint(1) !== PING_PONG.finish) throw new Malformed("the helper did not finish");
        const prepMessage = decodePrepMessage(vdaf, inbound.vector(4));
        inbound.end();
        const { outputShare } = vdaf.prepareNext(entry.state, prepMessage);
        Object.assign(entry, { status: "finished", outputShare });
      } catch (error) {
        Object.assign(entry, { status: "rejected", by: "leader", error: "vdaf_prep_error", detail: error.message });
      }
    } else {
      throw new Error(`the helper's prepare response has state ${state}`);
    }
  }
  list.end();
}

// ---------------------------------------------------------------------------------------------
// The helper

async function aggregationJobInit(taskId, req, body) {
  if (taskId !== TASK_ID_B64) return problem(404, "unrecognizedTask", "no such task");
  if (mediaType(req) !== MEDIA.aggregationJobInitReq) {
    return problem(415, "invalidMessage", `the body must be ${MEDIA.aggregationJobInitReq}`);
  }
  const inits = [];
  try {
    const reader = new Reader(body, "the AggregationJobInitReq");
    if (reader.vector(4).length) throw new Malformed("Prio3 takes an empty aggregation parameter");
    if (reader.uint(1) !== TIME_INTERVAL) throw new Malformed("the task's query type is time_interval");
    const list = new Reader(reader.vector(4), "the prepare inits");
    reader.end();
    while (!list.done) {
      const { metadata, reportId } = readMetadata(list);
      const publicShare = Buffer.from(list.vector(4));
      const ciphertext = readCiphertext(list, "the helper's encrypted input share");
      const inbound = Buffer.from(list.vector(4));
      inits.push({ metadata, reportId, publicShare, ciphertext, inbound });
    }
    if (!inits.length) throw new Malformed("the job has no reports");
    if (new Set(inits.map((init) => init.reportId.toString("hex"))).size !== inits.length) {
      throw new Malformed("two prepare inits have the same report id");
    }
  } catch (error) {
    if (error instanceof Malformed) return problem(400, "invalidMessage", error.message);
    throw error;
  }
  const responses = [];
  for (const init of inits) {
    const outcome = await helperInit(init);
    responses.push(
      typeof outcome === "string"
        ? Buffer.concat([init.reportId, u8(PREPARE_RESP.reject), u8(prepareError(outcome))])
        : Buffer.concat([init.reportId, u8(PREPARE_RESP.continue), vec32(outcome)]),
    );
  }
  return { status: 201, type: MEDIA.aggregationJobResp, body: vec32(Buffer.concat(responses)) };
}

/** Decrypt, validate and ping_pong_helper_init one report: the outbound finish(prep_msg), or
 * the name of the PrepareError it is rejected with. */
async function helperInit({ metadata, reportId, publicShare, ciphertext, inbound }) {
  if (reports.has(reportId.toString("hex"))) return "report_replayed";
  const entry = record(reportId, { status: "rejected", by: "helper" });
  const reject = (error, detail) => {
    Object.assign(entry, { error, detail });
    return error;
  };
  if (ciphertext.configId !== CONFIG_ID) return reject("hpke_unknown_config_id");
  let payload;
  try {
    payload = await openInputShare(metadata, publicShare, ciphertext);
    if (payload === null) return reject("hpke_decrypt_error");
    entry.inputShare = await decodeInputShare(vdaf, AGGREGATOR_ID, payload);
    entry.jointRandParts = decodePublicShare(vdaf, publicShare).jointRandParts;
  } catch (error) {
    if (error instanceof Malformed) return reject("invalid_message", error.message);
    throw error;
  }
  try {
    const { preparationState, preparationShare } = await vdaf.prepareInit(
      VERIFY_KEY,
      AGGREGATOR_ID,
      null,
      reportId,
      { jointRandParts: [...entry.jointRandParts] },
      entry.inputShare,
    );
    const message = new Reader(inbound, "the leader's ping-pong message");
    if (message.uint(1) !== PING_PONG.initialize) throw new Malformed("the leader's message is not initialize");
    const leaderPrepShare = decodePrepShare(vdaf, message.vector(4));
    message.end();
    // ping_pong_transition: combine both prep shares (FLP decide, joint randomness) into the prep message
    const prepMessage = await vdaf.unshardPreparationShares(null, [leaderPrepShare, preparationShare]);
    const { outputShare } = vdaf.prepareNext(preparationState, prepMessage);
    Object.assign(entry, { status: "finished", outputShare });
    return Buffer.concat([u8(PING_PONG.finish), vec32(vdaf.encodePreparationMessage(prepMessage))]);
  } catch (error) {
    return reject("vdaf_prep_error", error.message);
  }
}

/** Test-only: this helper's aggregate share over its finished, uncollected reports, if the leader
 * counts the same reports (DAP-09's report_count and checksum of AggregateShareReq). */
function aggregateShare(body) {
  const { report_count: count, checksum: theirs } = JSON.parse(body.toString("utf8"));
  const batch = [...reports.values()].filter((entry) => entry.status === "finished" && !entry.collected);
  const ours = checksum(batch.map((entry) => entry.reportId)).toString("hex");
  if (count !== batch.length || theirs !== ours) {
    return problem(400, "batchMismatch", `the helper has ${batch.length} reports with checksum ${ours}`);
  }
  for (const entry of batch) entry.collected = true;
  const share = vdaf.aggregate(
    null,
    batch.map((entry) => entry.outputShare),
  );
  return json(200, { report_count: batch.length, aggregate_share: decimal(share) });
}

// ---------------------------------------------------------------------------------------------
// HTTP

function shares() {
  return json(200, {
    role: ROLE,
    reports: [...reports.values()].map((entry) => ({
      report_id: entry.reportId.toString("hex"),
      status: entry.status,
      error: entry.error,
      measurement_share: decimal(entry.inputShare?.measurementShare),
      output_share: decimal(entry.outputShare),
    })),
  });
}

function mediaType(req) {
  return (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
}

function json(status, value) {
  return { status, type: "application/json", body: Buffer.from(JSON.stringify(value)) };
}

function problem(status, type, detail) {
  const document = { type: PROBLEM + type, title: type, status, detail, taskid: TASK_ID_B64 };
  return { status, type: "application/problem+json", body: Buffer.from(JSON.stringify(document)) };
}

async function route(req, body) {
  const url = new URL(req.url, "http://127.0.0.1");
  const path = url.pathname;
  const method = req.method;
  let match;
  if (path === "/hpke_config" && method === "GET") {
    const taskId = url.searchParams.get("task_id");
    if (taskId !== null && taskId !== TASK_ID_B64) return problem(404, "unrecognizedTask", "no such task");
    return {
      status: 200,
      type: MEDIA.hpkeConfigList,
      headers: { "cache-control": "max-age=86400" },
      body: vec16(Buffer.concat(hpkeConfigs)),
    };
  }
  if (IS_LEADER && (match = path.match(/^\/tasks\/([^/]+)\/reports$/)) && method === "PUT") {
    return upload(match[1], req, body);
  }
  if (!IS_LEADER && (match = path.match(/^\/tasks\/([^/]+)\/aggregation_jobs\/([^/]+)$/)) && method === "PUT") {
    return aggregationJobInit(match[1], req, body);
  }
  if (IS_LEADER && path === "/internal/collect" && method === "POST") return collect();
  if (!IS_LEADER && path === "/internal/aggregate_share" && method === "POST") return aggregateShare(body);
  if (path === "/internal/shares" && method === "GET") return shares();
  return { status: 404, type: "text/plain", body: Buffer.from(`no ${method} ${path} on the ${ROLE}\n`) };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", async () => {
    let answer;
    try {
      answer = await route(req, Buffer.concat(chunks));
    } catch (error) {
      process.stderr.write(`${ROLE}: ${error.stack}\n`);
      answer = { status: 500, type: "text/plain", body: Buffer.from(`${error.message}\n`) };
    }
    const body = answer.body ?? Buffer.alloc(0);
    const headers = { "content-length": body.length, ...answer.headers };
    if (answer.type) headers["content-type"] = answer.type;
    res.writeHead(answer.status, headers);
    res.end(body);
    process.stderr.write(`${ROLE}: ${req.method} ${req.url} -> ${answer.status}\n`);
  });
});

server.listen(Number(args.port), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ role: ROLE, port: server.address().port, config_id: CONFIG_ID })}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
