// 话费坐席工作台 (GET /agent/): quotes (POST /v1/quote) and bill inquiries
// (GET /v1/subscribers/{msisdn}/usage, GET /v1/subscribers/{msisdn}/calls/{ref}). Plain JS, no library, no other host.
// The access key lives only in the variable below: never in a URL, cookie or Web Storage,
// so it is gone when the tab closes.
"use strict";

(function () {
  let accessKey = null;
  let usagePage = { msisdn: "", month: "", offset: 0, limit: 20 };

  // Rejection codes (service/rating/rejections.py, and the API's input errors) in Chinese.
  const REJECTIONS_ZH = {
    "id.invalid": "记录编号无效",
    "caller.missing": "请填写主叫号码",
    "caller.invalid": "主叫号码应为11位手机号码（可带 +86、86 或 0086）",
    "caller.unknown_number_range": "主叫号码的号段不在号码表中",
    "caller.not_china_mobile": "主叫号码不是中国移动号码，且未在用户登记中",
    "callee.missing": "请填写被叫号码",
    "callee.empty": "请填写被叫号码",
    "callee.invalid_characters": "被叫号码只能包含数字和开头的一个“+”",
    "callee.too_long": "被叫号码过长，不是可拨打的号码",
    "callee.invalid_number": "被叫号码不是可拨打的号码",
    "callee.invalid_plus86": "+86 后面应为手机号码或区号",
    "callee.unknown_area_code": "被叫号码的区号不存在",
    "callee.unknown_mobile_prefix": "被叫手机号码的号段不在号码表中",
    "callee.information_line": "被叫为信息台（160、168）：不在本资费范围内",
    "callee.unknown_country_code": "被叫号码的国家或地区代码不存在",
    "callee.unassigned_nanp_area": "被叫号码的 +1 区号未分配给任何国家",
    "callee.unknown_destination": "被叫号码不属于编号计划中的任何国家或地区",
    "callee.incomplete": "被叫号码只有 IP 前缀（17951、12593），后面没有号码",
    "callee.invalid_foreign_length": "被叫国际号码位数不对",
    "callee.ip_prefix_on_forward": "呼转的转接号码不能带 IP 前缀（17951、12593）",
    "callee.no_rate_12593_foreign_national_roaming": "国内漫游时经 12593 拨打国际及港澳台电话，本资费无此费率",
    "start.missing": "请填写通话开始时间",
    "start.invalid": "通话开始时间格式应为 2010-03-01 10:00:00 或 RFC 3339",
    "start.no_tariff": "该时间没有生效的资费版本",
    "duration_s.missing": "请填写通话时长",
    "duration_s.invalid": "通话时长应为 0 到 86400 之间的整数秒",
    "type.invalid": "呼叫类型应为主叫、被叫或呼转",
    "forward_kind.missing": "呼转时请选择呼转类型",
    "forward_kind.invalid": "呼转类型应为无条件或有条件",
    "visited_area.invalid": "漫游地区号应为国内区号，如 021",
    "visited_area.unknown_area_code": "漫游地区号不存在",
    "visited_area.international_roaming": "国际漫游不在本资费范围内",
    "plan.missing": "该号码未登记资费套餐，请选择资费套餐",
    "plan.unknown": "所选资费套餐在该时间生效的资费中不存在",
    "packages.invalid": "业务包格式不对",
    "packages.unknown": "所选业务包在该时间生效的资费中不存在",
    "record.invalid": "请求格式不对",
    "record.not_json": "记录不是有效的 JSON",
    "record.not_freeswitch": "记录不是 FreeSWITCH 话单（缺少 variables.uuid）",
    "record.malformed": "记录不是格式正确的 JSON 或 XML",
    "record.forbidden_xml": "记录含 DTD、实体或外部引用，已拒收",
    "record.bad_encoding": "记录的 cdr= 字段缺失，或其 URL 编码、base64 无效",
    "start.invalid_epoch": "应答、起始时间（answer_uepoch 等）应为非负整数",
    "duration_s.invalid_billsec": "计费时长（billmsec、billsec）应为非负整数",
    "caller.invalid_diversion": "转移来源（sip_h_Diversion）中没有带用户号码的 URI",
    "record.not_ber": "记录不是完整的 BER 话单（文件从此处起截断或损坏）",
    "record.not_a_call": "记录不是主叫或被叫话单，无需计费",
    "record.partial_held": "中间话单，待该通话最后一张话单到达后合并计费",
    "start.invalid_answer_time": "应答时间（answerTime）应为 BCD 编码的时间及时区",
    "visited_area.unknown_msc": "交换机（MSC）不在 [3gpp.msc_areas] 表中，无法确定所在地区",
    "record.not_utf8": "记录不是 UTF-8 文本",
    "record.too_deep": "记录嵌套层数过多",
    "record.unsupported_value": "记录含有无法处理的数值或字符",
    "id.invalid_characters": "记录编号含有不允许的字符",
    "id.conflict": "同一记录编号已存有不同内容的话单",
  };
  const FIELD_INPUT = {
    caller: "q-caller",
    callee: "q-callee",
    start: "q-start",
    duration_s: "q-duration",
    type: "q-type",
    forward_kind: "q-forward",
    visited_area: "q-visited",
    plan: "q-plan",
    packages: "q-packages",
  };
  const CLASS_ZH = {
    local: "本地通话",
    domestic_ld: "国内长途",
    hmt: "港澳台长途",
    international: "国际长途",
    satellite: "卫星电话",
    special: "特服号码",
    incoming: "被叫接听",
    forward: "呼叫转移",
  };
  const DIAL_ZH = { direct: "直拨", "17951": "17951", "12593": "12593" };
  const ROAMING_ZH = { home: "归属地", in_province: "省内漫游", national: "国内漫游" };
  const ITEM_ZH = {
    local: "本地通话费",
    ld_domestic: "国内长途通话费",
    ld_hmt: "港澳台长途通话费",
    ld_international: "国际长途通话费",
    ld_satellite: "卫星电话长途通话费",
    ip17951_domestic: "17951国内长途通话费",
    ip17951_foreign: "17951国际及港澳台通话费",
    ip12593_domestic: "12593国内长途通话费",
    ip12593_foreign: "12593国际及港澳台通话费",
    roam_call: "漫游主叫通话费",
    roam_called: "漫游被叫通话费",
    forward_fee: "呼转基本费",
  };
  const SOURCE_ZH = { ingest: "入库批价", rerate: "重新批价", recycle: "挂账回收" };

  const $ = (id) => document.getElementById(id);

  // --- formatting ---------------------------------------------------------------------------

  function yuan(fen) {
    const sign = fen < 0 ? "-" : "";
    const abs = Math.abs(fen);
    return sign + Math.floor(abs / 100) + "." + String(abs % 100).padStart(2, "0");
  }

  function unitZh(unitS) {
    return unitS === 60 ? "分钟" : unitS + "秒";
  }

  function durationZh(seconds) {
    const m = Math.floor(seconds / 60);
    const s = seconds % 60;
    return m ? m + "分" + s + "秒" : s + "秒";
  }

  // An instant as Beijing wall-clock time, "2010-03-01 10:00:00".
  function beijing(value) {
    const date = value instanceof Date ? value : new Date(value);
    return new Date(date.getTime() + 8 * 3600 * 1000).toISOString().slice(0, 19).replace("T", " ");
  }

  function currentMonth() {
    return beijing(new Date()).slice(0, 7);
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  // --- the API ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || "HTTP " + status);
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + accessKey };
    const init = { method, headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, { message: "无法连接服务，请稍后再试" });
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (error) {
      payload = null;
    }
    if (!response.ok) {
      if (response.status === 401 && !$("work").hidden) signOut("接入密钥已失效，请重新登录");
      throw new ApiError(response.status, payload);
    }
    return payload;
  }

  function authMessage(status) {
    if (status === 401) return "接入密钥无效，请核对后重新输入";
    if (status === 403) return "该密钥的角色无权使用坐席工作台（需要坐席或管理员密钥）";
    return null;
  }

  function generalMessage(error) {
    return authMessage(error.status) ||
      (error.status === 0 ? error.message : "服务暂时不可用（" + error.status + "），请稍后再试");
  }

  // --- sign-in ------------------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const input = $("key");
    const key = input.value.trim();
    const message = $("login-error");
    message.textContent = "";
    if (!key) {
      message.textContent = "请输入接入密钥";
      input.focus();
      return;
    }
    accessKey = key;
    let catalogue;
    try {
      catalogue = await api("GET", "/v1/tariffs");
    } catch (error) {
      accessKey = null;
      message.textContent = generalMessage(error);
      input.setAttribute("aria-invalid", "true");
      input.select();
      return;
    }
    input.value = "";
    input.removeAttribute("aria-invalid");
    fillPlans(catalogue);
    $("login-screen").hidden = true;
    $("work").hidden = false;
    $("who").hidden = false;
    showTab("quote");
    $("q-caller").focus();
  }

  function signOut(reason) {
    accessKey = null;
    $("work").hidden = true;
    $("who").hidden = true;
    $("login-screen").hidden = false;
    $("quote-result").hidden = true;
    $("usage-result").hidden = true;
    $("login-error").textContent = reason || "";
    $("key").focus();
  }

  // Plans of the version in force now first, then any other version's plans.
  function fillPlans(catalogue) {
    const select = $("q-plan");
    while (select.options.length > 1) select.remove(1);
    const now = Date.now();
    const inForce = catalogue.filter(
      (v) => Date.parse(v.effective_from) <= now && (!v.in_force_until || Date.parse(v.in_force_until) > now)
    );
    const ordered = inForce.concat(catalogue.slice().reverse());
    const seen = new Set();
    for (const version of ordered) {
      for (const plan of version.plans) {
        if (seen.has(plan.id)) continue;
        seen.add(plan.id);
        const option = document.createElement("option");
        option.value = plan.id;
        option.textContent = plan.brand;
        select.appendChild(option);
      }
    }
  }

  function showTab(name) {
    for (const tab of ["quote", "usage"]) {
      const active = tab === name;
      $(tab + "-screen").hidden = !active;
      if (active) $("tab-" + tab).setAttribute("aria-current", "page");
      else $("tab-" + tab).removeAttribute("aria-current");
    }
  }

  // --- field errors -------------------------------------------------------------------------

  function clearErrors(form) {
    for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  function showFieldError(inputId, message) {
    const input = inputId === "q-packages" ? $("q-ldnight") : $(inputId);
    const errorId = inputId === "q-packages" ? "q-packages-error" : inputId + "-error";
    $(errorId).textContent = message;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  // --- 试算 ----------------------------------------------------------------------------------

  function quoteRequest() {
    const request = {
      caller: $("q-caller").value.trim(),
      callee: $("q-callee").value.trim(),
      start: $("q-start").value.trim(),
      type: $("q-type").value,
    };
    const duration = $("q-duration").value.trim();
    request.duration_s = /^\d+$/.test(duration) ? Number(duration) : duration;
    const forward = $("q-forward").value;
    if (forward) request.forward_kind = forward;
    const visited = $("q-visited").value.trim();
    if (visited) request.visited_area = visited;
    const plan = $("q-plan").value;
    if (plan) request.plan = plan;
    if ($("q-ldnight").checked) request.packages = ["ld_night"];
    else if (plan) request.packages = [];
    return request;
  }

  async function quote(event) {
    event.preventDefault();
    const form = $("quote-form");
    clearErrors(form);
    $("quote-result").hidden = true;
    const button = $("quote-button");
    button.disabled = true;
    try {
      showRating(await api("POST", "/v1/quote", quoteRequest()));
    } catch (error) {
      showQuoteError(error);
    } finally {
      button.disabled = false;
    }
  }

  function showQuoteError(error) {
    // the one error envelope: {"error": code, "message", "field"?}
    const body = error.body;
    const inputId = FIELD_INPUT[body.field];
    if (error.status === 422 && inputId) {
      showFieldError(inputId, REJECTIONS_ZH[body.error] || body.message);
    } else {
      $("q-form-error").textContent =
        error.status === 422 ? REJECTIONS_ZH[body.error] || body.message : generalMessage(error);
    }
  }

  function showRating(rating) {
    $("q-total").textContent = "合计 " + yuan(rating.charge_fen) + " 元";
    $("q-facts").textContent = [
      CLASS_ZH[rating.call_class] || rating.call_class,
      DIAL_ZH[rating.dial] || rating.dial,
      ROAMING_ZH[rating.roaming] || rating.roaming,
      "资费版本 " + rating.tariff,
    ].join(" · ");
    fillItems($("q-items").tBodies[0], rating.items);
    $("q-explanation").textContent = rating.explanation_zh;
    $("quote-result").hidden = false;
  }

  function fillItems(tbody, items) {
    tbody.replaceChildren();
    if (!items.length) {
      const row = tbody.insertRow();
      const td = cell(row, "本次通话不收费");
      td.colSpan = 4;
      return;
    }
    for (const item of items) {
      const row = tbody.insertRow();
      cell(row, ITEM_ZH[item.code] || item.code);
      cell(row, item.units + " × " + unitZh(item.unit_s));
      cell(row, yuan(item.rate_fen) + "元/" + unitZh(item.unit_s));
      cell(row, yuan(item.amount_fen), "num");
    }
  }

  async function copyText(button) {
    const text = $(button.dataset.copy).textContent;
    const status = button.nextElementSibling;
    let copied = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        copied = true;
      }
    } catch (error) {
      copied = false;
    }
    if (!copied) {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      copied = document.execCommand("copy");
      area.remove();
      button.focus();
    }
    status.textContent = copied ? "已复制" : "复制失败，请手动选择文字复制";
  }

  // --- 详单 ----------------------------------------------------------------------------------

  async function inquire(event) {
    event.preventDefault();
    const form = $("usage-form");
    clearErrors(form);
    const msisdn = $("u-msisdn").value.trim();
    const month = $("u-month").value.trim() || currentMonth();
    if (!/^\d{4}-\d{2}$/.test(month)) {
      showFieldError("u-month", "账期格式应为 YYYY-MM，例如 2010-03");
      return;
    }
    usagePage = { msisdn, month, offset: 0, limit: usagePage.limit };
    await loadUsage();
  }

  async function loadUsage() {
    const { msisdn, month, offset, limit } = usagePage;
    const path =
      "/v1/subscribers/" + encodeURIComponent(msisdn) + "/usage?month=" + encodeURIComponent(month) +
      "&offset=" + offset + "&limit=" + limit;
    $("usage-button").disabled = true;
    try {
      showUsage(await api("GET", path));
    } catch (error) {
      $("usage-result").hidden = true;
      const message = (error.body && error.body.message) || "";
      if (error.status === 422 && (error.body.field === "month" || message.includes("month"))) {
        showFieldError("u-month", "账期格式应为 YYYY-MM，例如 2010-03");
      } else if (error.status === 422) {
        showFieldError("u-msisdn", "用户号码应为11位手机号码");
      } else {
        $("u-form-error").textContent = generalMessage(error);
      }
    } finally {
      $("usage-button").disabled = false;
    }
  }

  function showUsage(usage) {
    const s = usage.subscriber;
    const facts = [
      ["用户号码", s.msisdn],
      ["账期", usage.month],
      ["品牌", s.registered ? s.brand || s.plan : "未登记"],
      ["归属地", [s.home_city, s.home_area].filter(Boolean).join(" ") || "未知"],
      ["已办业务", s.packages.map((p) => p.name || p.id).join("、") || "无"],
      ["通话次数", String(usage.call_count)],
    ];
    const dl = $("u-subscriber");
    dl.replaceChildren();
    for (const [term, value] of facts) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dl.append(dt, dd);
    }

    const summary = $("u-summary").tBodies[0];
    summary.replaceChildren();
    for (const row of usage.summary) {
      const tr = summary.insertRow();
      cell(tr, CLASS_ZH[row.call_class] || row.call_class);
      cell(tr, String(row.calls), "num");
      cell(tr, String(row.minutes), "num");
      cell(tr, yuan(row.charge_fen), "num");
    }
    for (const p of s.packages) {
      const tr = summary.insertRow();
      tr.className = "package";
      cell(tr, (p.name || p.id) + "（月功能费）");
      cell(tr, "", "num");
      cell(tr, "", "num");
      cell(tr, yuan(p.monthly_fee_fen), "num");
    }
    if (!summary.rows.length) {
      const td = cell(summary.insertRow(), "本月无通话");
      td.colSpan = 4;
    }
    $("u-total").textContent = yuan(usage.total_fen);

    const calls = $("u-calls").tBodies[0];
    calls.replaceChildren();
    for (const c of usage.calls) {
      const tr = calls.insertRow();
      tr.dataset.id = c.id;
      const first = tr.insertCell();
      const button = document.createElement("button");
      button.type = "button";
      button.className = "call";
      button.textContent = c.start.slice(0, 19).replace("T", " ");
      button.setAttribute("aria-label", "查看 " + button.textContent + " 的通话说明");
      button.addEventListener("click", () => showCall(usage.subscriber.msisdn, c.ref, tr));
      first.appendChild(button);
      cell(tr, c.other_party);
      cell(tr, durationZh(c.duration_s), "num");
      cell(tr, (CLASS_ZH[c.call_class] || c.call_class) + (c.ratings > 1 ? "（已重新批价）" : ""));
      cell(tr, yuan(c.charge_fen), "num");
    }
    if (!usage.calls.length) {
      const td = cell(calls.insertRow(), "本月无通话记录");
      td.colSpan = 5;
    }
    const last = usage.offset + usage.calls.length;
    $("u-page").textContent = usage.call_count ? "（第 " + (usage.offset + 1) + "–" + last + " 条，共 " + usage.call_count + " 条）" : "";
    $("u-prev").disabled = usage.offset === 0;
    $("u-next").disabled = usage.next_offset === null;
    $("call-detail").hidden = true;
    $("usage-result").hidden = false;
  }

  async function showCall(msisdn, ref, row) {
    for (const tr of $("u-calls").tBodies[0].rows) tr.classList.toggle("selected", tr === row);
    let record;
    try {
      // by the call's reference: its id may hold a number the agent sees masked
      record = await api("GET", "/v1/subscribers/" + encodeURIComponent(msisdn) + "/calls/" + encodeURIComponent(ref));
    } catch (error) {
      $("u-form-error").textContent = generalMessage(error);
      return;
    }
    $("cd-title").textContent = "通话说明：" + beijing(record.start_epoch_s * 1000) + " 对方 " + record.callee;
    $("cd-explanation").textContent = record.current.explanation_zh;
    const history = $("cd-history").tBodies[0];
    history.replaceChildren();
    for (const rating of record.ratings) {
      const tr = history.insertRow();
      cell(tr, String(rating.seq) + (rating.seq === record.current.seq ? "（当前）" : ""));
      cell(tr, rating.tariff);
      cell(tr, yuan(rating.charge_fen), "num");
      cell(tr, beijing(rating.rated_at));
      cell(tr, SOURCE_ZH[rating.source] || rating.source);
      cell(tr, rating.explanation_zh);
    }
    const detail = $("call-detail");
    detail.hidden = false;
    detail.querySelector("button.copy").focus();
  }

  // --- wiring -------------------------------------------------------------------------------

  function defaults() {
    $("q-start").value = beijing(new Date());
    $("u-month").value = currentMonth();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", signIn);
    $("logout").addEventListener("click", () => signOut("已退出"));
    $("tab-quote").addEventListener("click", () => showTab("quote"));
    $("tab-usage").addEventListener("click", () => {
      showTab("usage");
      $("u-msisdn").focus();
    });
    $("quote-form").addEventListener("submit", quote);
    $("usage-form").addEventListener("submit", inquire);
    $("u-prev").addEventListener("click", () => {
      usagePage.offset = Math.max(0, usagePage.offset - usagePage.limit);
      loadUsage();
    });
    $("u-next").addEventListener("click", () => {
      usagePage.offset += usagePage.limit;
      loadUsage();
    });
    for (const button of document.querySelectorAll("button.copy")) {
      button.addEventListener("click", () => copyText(button));
    }
    defaults();
    $("key").focus();
  });
})();
