// Every way the official Node.js SDK signs and sends a request, against the real server:
// TC3-HMAC-SHA256, HmacSHA256 (the SDK's default) and HmacSHA1, each by POST and by GET, to
// an endpoint with its port and one without; and the refusals the SDK reports as its own
// exception with the server's code.

"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { C1, RES, SIGNINGS, call, common, errorCode, skipReason, typed, withClockOff, world } = require("./harness");

let server;
before(async () => {
  if (!skipReason) {
    server = await world();
  }
});
after(async () => {
  if (server) {
    assert.equal(await server.stop(), 0, "Ctrl-C stops the server with status 0");
  }
});

const remainingOf = async (options, customer) => {
  const answer = await call(typed(RES, options), "QueryCreditByUinList", { UinList: [customer] });
  assert.equal(answer.Data.length, 1);
  assert.equal(answer.Data[0].Uin, customer);
  return answer.Data[0].RemainingCredit;
};

for (const signing of SIGNINGS) {
  for (const withPort of [true, false]) {
    const name = `${signing.signMethod} by ${signing.reqMethod}, endpoint ${withPort ? "with" : "without"} its port`;
    test(`${name}: a purchase, and the books read back by the typed client`, { skip: skipReason }, async () => {
      const options = { ...signing, port: withPort ? server.port : null };
      const id = `p-${signing.signMethod}-${signing.reqMethod}-${withPort ? "port" : "none"}`;
      const before = await remainingOf(options, C1);
      const answer = await call(common(C1, options), "CreatePurchase", {
        PurchaseId: id,
        ClientUin: C1,
        Amount: 1.25,
        ProductCode: "cvm standard/s5",
      });
      assert.equal(answer.PurchaseId, id);
      assert.equal(answer.Status, "Committed");
      assert.equal(answer.ChargedUin, RES);
      assert.equal(answer.ClientCharge, 1.25);
      assert.equal(answer.ClientVoucherDeduction, 0);
      assert.equal(answer.ClientRemainingCredit, before - 1.25);
      assert.ok(answer.RequestId, "every answer has a RequestId");
      assert.equal(await remainingOf(options, C1), before - 1.25);
      // The same id and content again: the first answer, nothing charged twice.
      const again = await call(common(C1, options), "CreatePurchase", {
        PurchaseId: id,
        ClientUin: C1,
        Amount: 1.25,
        ProductCode: "cvm standard/s5",
      });
      assert.equal(again.ClientRemainingCredit, before - 1.25);
      assert.equal(await remainingOf(options, C1), before - 1.25);
    });
  }

  test(`${signing.signMethod} by ${signing.reqMethod}: refusals reach the SDK as its exception with the code`, { skip: skipReason }, async () => {
    const options = { ...signing, port: server.port };
    const before = await remainingOf(options, C1);
    const purchase = { PurchaseId: `refused-${signing.signMethod}-${signing.reqMethod}`, ClientUin: C1, Amount: 1 };
    const wrongKey = common(["AKIDtest2000001", "not-the-secret-key"], options);
    assert.equal(await errorCode(call(wrongKey, "CreatePurchase", purchase)), "AuthFailure.SignatureFailure");
    const nobody = common(["AKIDnobody", "some-key"], options);
    assert.equal(await errorCode(call(nobody, "CreatePurchase", purchase)), "AuthFailure.SecretIdNotFound");
    const tenMinutesAgo = await withClockOff(-600_000, () => errorCode(call(common(C1, options), "CreatePurchase", purchase)));
    assert.equal(tenMinutesAgo, "AuthFailure.SignatureExpire");
    assert.equal(await errorCode(call(common(C1, options), "NoSuchAction", {})), "InvalidAction");
    const tooMuch = { ...purchase, Amount: 1_000_000 };
    assert.equal(await errorCode(call(common(C1, options), "CreatePurchase", tooMuch)), "FailedOperation.InsufficientClientCredit");
    assert.equal(await errorCode(call(typed(C1, options), "QueryCreditByUinList", { UinList: [C1] })), "UnauthorizedOperation.NotCustomerUin");
    assert.equal(await remainingOf(options, C1), before, "a refusal changes nothing");
  });
}
