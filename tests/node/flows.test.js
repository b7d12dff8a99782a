// The credit flows through the official Node.js SDK, by every signature method and request
// method: a batch of purchases, a reservation committed and one cancelled, an allocation and
// its history, and a customer voucher deducted by a purchase. Lists and objects in the
// requests (`Purchases`, `ProductCodes`) travel flattened (`Purchases.0.Amount=...`) by v1
// and by GET.

"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { C1, C2, RES, SIGNINGS, call, common, skipReason, typed, world } = require("./harness");

let server;
before(async () => {
  if (!skipReason) {
    server = await world();
    const signing = { signMethod: "TC3-HMAC-SHA256", reqMethod: "POST", port: server.port };
    await call(common("operator", signing), "GrantVoucherQuota", { PartnerUin: RES, Quota: 1000 });
  }
});
after(async () => {
  if (server) {
    assert.equal(await server.stop(), 0, "Ctrl-C stops the server with status 0");
  }
});

for (const signing of SIGNINGS) {
  const name = `${signing.signMethod} by ${signing.reqMethod}`;
  const tag = `${signing.signMethod}-${signing.reqMethod}`;
  const options = () => ({ ...signing, port: server.port });

  test(`${name}: a batch, answered in order, one refused`, { skip: skipReason }, async () => {
    const answer = await call(common(C2, options()), "CreatePurchases", {
      Purchases: [
        { PurchaseId: `b1-${tag}`, ClientUin: C2, Amount: 0.5 },
        { PurchaseId: `b2-${tag}`, ClientUin: C2, Amount: 1_000_000 },
        { PurchaseId: `b3-${tag}`, ClientUin: C2, Amount: 1.5, PaymentMode: "Postpaid" },
      ],
    });
    assert.deepEqual(
      answer.Results.map((result) => [result.PurchaseId, result.Status, result.ErrorCode]),
      [
        [`b1-${tag}`, "Committed", undefined],
        [`b2-${tag}`, "Refused", "FailedOperation.InsufficientClientCredit"],
        [`b3-${tag}`, "Committed", undefined],
      ],
    );
    assert.equal(answer.Results[2].ClientCharge, 1.5);
  });

  test(`${name}: a reservation committed, another cancelled`, { skip: skipReason }, async () => {
    const customer = common(C1, options());
    const reserved = await call(customer, "ReservePurchase", {
      PurchaseId: `r1-${tag}`,
      ClientUin: C1,
      Amount: 2,
      TimeoutSeconds: 600,
    });
    assert.equal(reserved.Status, "Reserved");
    assert.match(reserved.ExpireTime, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    const committed = await call(customer, "CommitPurchase", { PurchaseId: `r1-${tag}` });
    assert.deepEqual([committed.PurchaseId, committed.Status], [`r1-${tag}`, "Committed"]);
    await call(customer, "ReservePurchase", { PurchaseId: `r2-${tag}`, ClientUin: C1, Amount: 3 });
    const cancelled = await call(customer, "CancelPurchase", { PurchaseId: `r2-${tag}` });
    assert.deepEqual([cancelled.PurchaseId, cancelled.Status], [`r2-${tag}`, "Cancelled"]);
  });

  test(`${name}: an allocation and its history`, { skip: skipReason }, async () => {
    const reseller = typed(RES, options());
    const before = (await call(reseller, "QueryCreditByUinList", { UinList: [C2] })).Data[0];
    const remark = `top-up by ${signing.signMethod} & ${signing.reqMethod}`;
    const allocated = await call(reseller, "AllocateCustomerCredit", { ClientUin: C2, AddedCredit: 5.5, Remark: remark });
    assert.equal(allocated.TotalCredit, before.TotalCredit + 5.5);
    assert.equal(allocated.RemainingCredit, before.RemainingCredit + 5.5);
    const history = await call(reseller, "QueryCreditAllocationHistory", { ClientUin: C2, Page: 1, PageSize: 1 });
    assert.ok(history.Total >= 2, `${history.Total} allocations`);
    assert.equal(history.History.length, 1);
    const newest = history.History[0];
    assert.equal(newest.Remark, remark);
    assert.equal(newest.Credit, 5.5);
    assert.equal(newest.AllocatedCredit, allocated.TotalCredit);
    assert.equal(newest.ClientCreditAfter, allocated.RemainingCredit);
    assert.equal(newest.Operator, String(RES));
  });

  test(`${name}: a customer voucher for two products, deducted by a purchase`, { skip: skipReason }, async () => {
    const issued = await call(common(RES, options()), "IssueCustomerVoucher", {
      CustomerUin: C1,
      Amount: 2,
      ProductScope: "SpecifyProducts",
      ProductCodes: ["cvm", "cbs"],
      ExpireTime: "2099-12-31 23:59:59",
    });
    assert.ok(Number.isInteger(issued.VoucherId), JSON.stringify(issued));
    const bought = await call(common(C1, options()), "CreatePurchase", {
      PurchaseId: `v-${tag}`,
      ClientUin: C1,
      Amount: 3,
      ProductCode: "cbs",
    });
    assert.equal(bought.ClientVoucherDeduction, 2);
    assert.equal(bought.ClientCharge, 1);
    const listed = await call(typed(RES, options()), "DescribeCustomerVoucherList", {
      Page: 1,
      PageSize: 10,
      CustomerUin: C1,
      VoucherId: issued.VoucherId,
    });
    assert.equal(listed.TotalCount, 1);
    const voucher = listed.Data[0];
    assert.deepEqual(
      [voucher.VoucherId, voucher.VoucherStatus, voucher.ProductScope, voucher.TotalAmount, voucher.RemainingAmount],
      [issued.VoucherId, "Used", "SpecifyProducts", 2, 0],
    );
  });
}
