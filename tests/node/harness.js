// The harness of the Node.js SDK suite: the real `partner-credit serve` binary on a free
// loopback port, and the official Node.js SDK (tencentcloud-sdk-nodejs-intl-en, pinned in
// package.json) pointed at it with every signing option.
//
// As tests/sdk/conftest.py does for Python: the binary comes from PARTNER_CREDIT_BIN
// (scripts/test sets it), else target/release or target/debug; each test file starts its
// own server and stops it with Ctrl-C, which must exit 0.
//
// The SDK names the server by its endpoint, and the TC3 service by the endpoint's first
// label, so every endpoint here starts with `intlpartnersmgt.`: `intlpartnersmgt.localhost`,
// with the server's port or without one. Such names do not resolve here, and a URL without
// a port means port 80, so the connections are routed to the server, as DNS and a proxy
// would route them: the HTTP agent connects to 127.0.0.1 at the server's port, whatever the
// URL says, and the SDK's requests (URL, Host header, signature) stay exactly as it writes
// them.
//
// Nothing is installed here: when the SDK or the binary is missing, every test is skipped
// and says why (scripts/test installs the SDK with npm ci and builds the binary, and sets
// PARTNER_CREDIT_REQUIRE_NODE_SDK=1, which makes a missing one a failure instead).

"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const REPO = path.resolve(__dirname, "..", "..");
const VERSION = "2022-09-28";

/// The SDK, or why it cannot be loaded.
let sdk = null;
let sdkMissing = null;
try {
  sdk = {
    tencentcloud: require("tencentcloud-sdk-nodejs-intl-en"),
    common: require("tencentcloud-sdk-nodejs-intl-en/tencentcloud/common"),
    SdkError: require("tencentcloud-sdk-nodejs-intl-en/tencentcloud/common/exception/tencent_cloud_sdk_exception"),
  };
} catch (error) {
  sdkMissing = `tencentcloud-sdk-nodejs-intl-en is not installed in tests/node (scripts/test runs npm ci): ${error.message}`;
}

function binary() {
  const fromEnv = process.env.PARTNER_CREDIT_BIN;
  if (fromEnv) {
    return fs.existsSync(fromEnv) ? path.resolve(fromEnv) : null;
  }
  for (const profile of ["release", "debug"]) {
    const candidate = path.join(REPO, "target", profile, "partner-credit");
    if (fs.existsSync(candidate)) {
      return candidate;
    }
  }
  return null;
}

/// scripts/test installs the SDK and builds the binary, so there a missing one is a failure,
/// not a skip.
function requireOrSkip(reason) {
  if (reason && process.env.PARTNER_CREDIT_REQUIRE_NODE_SDK === "1") {
    throw new Error(`PARTNER_CREDIT_REQUIRE_NODE_SDK=1, but ${reason}`);
  }
  return reason;
}

/// Why the suite cannot run here, or false: what each test passes as `skip` (node:test
/// takes any value but `undefined` and `false` as a reason to skip).
const skipReason = requireOrSkip(
  sdkMissing ||
    (binary() ? false : "no partner-credit binary: build it (cargo build --release) or set PARTNER_CREDIT_BIN"),
);

// ----- accounts and keys (the same as the Python suite's) ---------------------------------------

const OPERATOR = ["AKIDoperatorTEST", "operator-secret-key-TEST"];
const RES = 1_000_003; // a reseller, credit line 500
const C1 = 2_000_001; // its customer, 100
const C2 = 2_000_004; // its other customer, 50
const CUSTOMERS = [C1, C2];

function keyOf(uin) {
  return [`AKIDtest${uin}`, `secret-key-of-${uin}`];
}

function config() {
  const lines = ['listen = "127.0.0.1:0"', "", "[operator]", `secret_id = "${OPERATOR[0]}"`, `secret_key = "${OPERATOR[1]}"`, ""];
  for (const uin of [RES, ...CUSTOMERS]) {
    const [id, key] = keyOf(uin);
    lines.push("[[keys]]", `secret_id = "${id}"`, `secret_key = "${key}"`, `uin = ${uin}`, "");
  }
  // The functional tests call these more often than their documented quotas allow.
  lines.push("[quotas]");
  for (const action of ["AllocateCustomerCredit", "QueryPartnerCredit", "QueryCreditByUinList", "QueryCreditAllocationHistory"]) {
    lines.push(`${action} = "none"`);
  }
  lines.push("", "[http]", "workers = 1", "timestamp_skew_secs = 300", "");
  return lines.join("\n");
}

// ----- the server --------------------------------------------------------------------------------

const LISTENING = "partner-credit serve: listening on ";

/// Starts `partner-credit serve` in a directory of its own; resolves once it listens.
function startServer() {
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), "partner-credit-node-"));
  const configPath = path.join(workdir, "server.toml");
  fs.writeFileSync(configPath, config());
  const child = spawn(binary(), ["serve", "--config", configPath, "--listen", "127.0.0.1:0"], {
    cwd: workdir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no listening line within 30 s; stderr: ${stderr}`));
    }, 30_000);
    child.on("exit", (code) => reject(new Error(`the server exited (${code}) before listening; stderr: ${stderr}`)));
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const line = stdout.split("\n")[0];
      if (!stdout.includes("\n")) {
        return;
      }
      clearTimeout(timer);
      if (!line.startsWith(LISTENING)) {
        child.kill("SIGKILL");
        reject(new Error(`unexpected first line ${JSON.stringify(line)}; stderr: ${stderr}`));
        return;
      }
      const url = new URL(line.slice(LISTENING.length).trim());
      resolve({
        port: Number(url.port),
        /// Ctrl-C; resolves with the exit code.
        stop() {
          return new Promise((done) => {
            child.removeAllListeners("exit");
            child.on("exit", (code) => done(code));
            child.kill("SIGINT");
          });
        },
      });
    });
  });
}

/// Routes every HTTP connection of this process to the server's port on the loopback
/// interface (see the top of this file).
function routeTo(port) {
  class ToServer extends http.Agent {
    createConnection(options, callback) {
      return net.createConnection({ host: "127.0.0.1", port }, callback);
    }
  }
  http.globalAgent = new ToServer({ keepAlive: true });
}

// ----- clients -------------------------------------------------------------------------------------

/// How a client signs and sends: `signMethod` TC3-HMAC-SHA256, HmacSHA256 or HmacSHA1;
/// `reqMethod` POST or GET; `port` in the endpoint or none.
function profileOf({ signMethod, reqMethod, port }) {
  const endpoint = port ? `intlpartnersmgt.localhost:${port}` : "intlpartnersmgt.localhost";
  const { ClientProfile, HttpProfile } = sdk.common;
  return new ClientProfile(signMethod, new HttpProfile("http://", endpoint, reqMethod, 30));
}

function credentialOf(caller) {
  const [id, key] = caller === "operator" ? OPERATOR : Array.isArray(caller) ? caller : keyOf(caller);
  return new sdk.common.Credential(id, key);
}

/// The SDK's typed client for the upstream actions.
function typed(caller, options) {
  const Client = sdk.tencentcloud.intlpartnersmgt.v20220928.Client;
  return new Client(credentialOf(caller), "ap-singapore", profileOf(options));
}

/// The SDK's CommonClient, for the engine's own actions.
function common(caller, options) {
  const endpoint = profileOf(options).httpProfile.endpoint;
  return new sdk.common.CommonClient(endpoint, VERSION, credentialOf(caller), "ap-singapore", profileOf(options));
}

/// Calls `action` with `params` on a typed or common client; resolves with the answer (the
/// typed client's response model, or the common client's `Response` object).
function call(client, action, params = {}) {
  return new Promise((resolve, reject) => {
    const callback = (error, answer) => (error ? reject(error) : resolve(answer));
    if (client instanceof sdk.common.CommonClient) {
      client.request(action, params, {}, callback);
    } else {
      client[action](params, callback);
    }
  });
}

/// The SDK's exception a call fails with (it must fail): its `code`.
async function errorCode(promise) {
  try {
    const answer = await promise;
    throw new Error(`expected an error, got ${JSON.stringify(answer)}`);
  } catch (error) {
    if (!(error instanceof sdk.SdkError)) {
      throw error;
    }
    return error.code;
  }
}

/// Runs `body` with this process's clock `offsetMs` off, as a client whose clock is wrong
/// signs: the SDK reads the time from `Date` when it signs.
async function withClockOff(offsetMs, body) {
  const RealDate = Date;
  class OffDate extends RealDate {
    constructor(...args) {
      super(...(args.length === 0 ? [RealDate.now() + offsetMs] : args));
    }
    static now() {
      return RealDate.now() + offsetMs;
    }
  }
  global.Date = OffDate;
  try {
    return await body();
  } finally {
    global.Date = RealDate;
  }
}

/// Every way the SDK signs and sends: three signature methods, by POST and by GET.
const SIGNINGS = [];
for (const signMethod of ["TC3-HMAC-SHA256", "HmacSHA256", "HmacSHA1"]) {
  for (const reqMethod of ["POST", "GET"]) {
    SIGNINGS.push({ signMethod, reqMethod });
  }
}

/// A server with RES (line 500) and its customers C1 (100) and C2 (50), set up through the
/// SDK itself (TC3, the SDK's TC3 default of JSON by POST).
async function world() {
  const server = await startServer();
  routeTo(server.port);
  const signing = { signMethod: "TC3-HMAC-SHA256", reqMethod: "POST", port: server.port };
  const op = common("operator", signing);
  await call(op, "CreatePartner", { Kind: "Reseller", Uin: RES, Name: "Res" });
  for (const customer of CUSTOMERS) {
    await call(op, "CreateClient", { ParentUin: RES, Uin: customer, Name: `customer ${customer}` });
  }
  await call(op, "GrantPartnerCredit", { PartnerUin: RES, Credit: 500 });
  const reseller = typed(RES, signing);
  await call(reseller, "AllocateCustomerCredit", { ClientUin: C1, AddedCredit: 100 });
  await call(reseller, "AllocateCustomerCredit", { ClientUin: C2, AddedCredit: 50 });
  return server;
}

module.exports = {
  C1,
  C2,
  RES,
  SIGNINGS,
  call,
  common,
  errorCode,
  skipReason,
  typed,
  withClockOff,
  world,
};
