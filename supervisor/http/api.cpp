#include "supervisor/http/api.hpp"

#include <fmt/format.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <deque>
#include <fstream>
#include <sstream>

#include "common/async.hpp"
#include "qemu/data_disk_qmp.hpp"
#include "qemu/qmp/qmp_policy.hpp"
#include "supervisor/data_disks.hpp"
#include "supervisor/http/console_html.hpp"
#include "supervisor/http/web_files.hpp"
#include "supervisor/phase_budget.hpp"
#include "supervisor/qemu_user.hpp"

namespace berth {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
using boost::system::error_code;
using namespace std::chrono_literals;

namespace {

constexpr auto kQmpDeadline = 2s;  // a QEMU that cannot answer in this time is hung

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::string_view query_of(std::string_view target) {
  const auto q = target.find('?');
  return q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
}

HttpReply text_reply(http::status status, std::string body, std::string_view type,
                     unsigned version) {
  HttpReply reply{HttpResponse(status, version), {}, {}};
  reply.response.set(http::field::content_type, type);
  reply.response.set(http::field::cache_control, "no-store");
  reply.response.body() = std::move(body);
  reply.response.prepare_payload();
  return reply;
}

// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

constexpr std::string_view kTokenCookie = "berth_token";

// The Set-Cookie value that hands the console its token (`max_age` 0: forgets it).
std::string token_cookie(std::string_view token, std::optional<int> max_age = std::nullopt) {
  return fmt::format("{}={}; HttpOnly; SameSite=Strict; Path=/{}", kTokenCookie, token,
                     max_age ? fmt::format("; Max-Age={}", *max_age) : "");
}

// The value of cookie `name` in a Cookie header ("a=1; b=2").
std::optional<std::string_view> cookie_value(std::string_view cookies, std::string_view name) {
  for (std::size_t start = 0; start < cookies.size();) {
    const auto end = std::min(cookies.find(';', start), cookies.size());
    auto pair = cookies.substr(start, end - start);
    while (pair.starts_with(' '))
      pair.remove_prefix(1);
    if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=')
      return pair.substr(name.size() + 1);
    start = end + 1;
  }
  return std::nullopt;
}

// Whether a query string has parameter `name` ("name=..." or a bare "name").
bool query_has(std::string_view query, std::string_view name) {
  for (std::size_t start = 0; start < query.size();) {
    const auto end = std::min(query.find('&', start), query.size());
    const auto pair = query.substr(start, end - start);
    if (pair == name
        || (pair.starts_with(name) && pair.size() > name.size() && pair[name.size()] == '='))
      return true;
    start = end + 1;
  }
  return false;
}

// The host of a Host header without its port ("[::1]:9251" -> "[::1]").
std::string_view host_name(std::string_view host) {
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  return host.substr(0, host.find(':'));
}

std::string vm_status_of(const qmp::CommandResult& result) {
  if (!result.ok() || !result.value.is_object())
    return "";
  const auto* status = result.value.get_object().if_contains("status");
  return status && status->is_string() ? std::string(status->get_string()) : "";
}

}  // namespace

Api::Api(asio::io_context& io, RuntimeState& state, MetricsRegistry& registry, const Config& config,
         std::optional<std::string> token, std::shared_ptr<spdlog::logger> log)
    : io_(io),
      state_(state),
      registry_(registry),
      config_(config),
      token_(std::move(token)),
      log_(std::move(log)) {
  register_metrics();
}

asio::awaitable<HttpReply> Api::health(HttpRequest request, asio::ip::tcp::endpoint) {
  const unsigned version = request.version();
  if (request.method() != http::verb::get && request.method() != http::verb::head)
    co_return json_error(http::status::method_not_allowed, "only GET is served here", version);
  const auto path = path_of(request.target());
  if (path == "/healthz")
    co_return co_await healthz(version);
  if (path == "/readyz")
    co_return co_await readyz(version);
  if (path == "/metrics")
    co_return text_reply(http::status::ok, co_await metrics(), "text/plain; version=0.0.4",
                         version);
  co_return json_error(http::status::not_found, "no such endpoint; try /healthz, /readyz, /metrics",
                       version);
}

asio::awaitable<HttpReply> Api::healthz(unsigned version) {
  json::object body;
  body["phase"] = phase_name(state_.phase());
  const auto now = RuntimeState::Clock::now();
  body["phase_seconds"] =
      std::chrono::duration_cast<std::chrono::seconds>(now - state_.phase_entered()).count();
  // A start-up phase past its budget (phase_budget.cpp): stuck, so the liveness probe restarts
  // the pod.
  if (auto overrun = phase_overrun(config_.phase_budgets, state_.phase(), state_.phase_entered(),
                                   state_.last_progress(), now)) {
    body["status"] = "failing";
    body["error"] = overrun->message;
    body["budget_seconds"] = overrun->budget.count();
    co_return json_reply(http::status::service_unavailable, json::serialize(body), version);
  }
  // Before QEMU answers QMP and while stopping, being able to answer is the whole of liveness
  // (the booting phase's budget bounds the wait for QMP).
  auto qmp = state_.qmp();
  if (state_.phase() < Phase::kBooting || state_.phase() >= Phase::kStopping
      || (state_.phase() == Phase::kBooting && !qmp)) {
    body["status"] = "ok";
    co_return json_reply(http::status::ok, json::serialize(body), version);
  }
  if (!qmp || !qmp->connected()) {
    body["status"] = "failing";
    body["error"] = "QMP is not connected";
    co_return json_reply(http::status::service_unavailable, json::serialize(body), version);
  }
  const auto result = co_await qmp->execute("query-status", {}, kQmpDeadline);
  if (!result.ok()) {
    body["status"] = "failing";
    body["error"] = "QMP query-status: " + result.describe();
    co_return json_reply(http::status::service_unavailable, json::serialize(body), version);
  }
  body["status"] = "ok";
  body["vm"] = vm_status_of(result);
  co_return json_reply(http::status::ok, json::serialize(body), version);
}

asio::awaitable<HttpReply> Api::readyz(unsigned version) {
  json::object body;
  body["phase"] = phase_name(state_.phase());
  auto not_ready = [&](std::string why) {
    body["status"] = "not ready";
    body["reason"] = std::move(why);
    return json_reply(http::status::service_unavailable, json::serialize(body), version);
  };
  if (state_.phase() != Phase::kRunning)
    co_return not_ready("the VM is not running yet");
  auto qmp = state_.qmp();
  if (!qmp || !qmp->connected())
    co_return not_ready("QMP is not connected");
  const std::string vm = vm_status_of(co_await qmp->execute("query-status", {}, kQmpDeadline));
  if (vm != "running")
    co_return not_ready("the VM is " + (vm.empty() ? "not answering" : vm));
  if (auto lease = state_.lease_problem())
    co_return not_ready(std::move(*lease));
  if (config_.ready_agent) {
    GuestAgent* agent = state_.guest_agent();
    if (agent == nullptr)
      co_return not_ready("the VM has no guest agent channel");
    if (auto silent = co_await agent->ping(2s))
      co_return not_ready(std::move(*silent));
  }
  if (config_.ready_tcp) {
    asio::ip::tcp::socket socket(io_);
    error_code ec;
    if (!co_await with_deadline(socket.async_connect({state_.vm_ip(), *config_.ready_tcp},
                                                     asio::redirect_error(asio::use_awaitable, ec)),
                                1s))
      ec = asio::error::timed_out;
    if (ec)
      co_return not_ready(fmt::format("the guest does not accept TCP on {}:{} ({})",
                                      state_.vm_ip().to_string(), *config_.ready_tcp,
                                      ec.message()));
  }
  body["status"] = "ready";
  co_return json_reply(http::status::ok, json::serialize(body), version);
}

asio::awaitable<std::string> Api::metrics() {
  blockstats_ = nullptr;
  auto qmp = state_.qmp();
  if (qmp && qmp->connected()) {
    auto stats = co_await qmp->execute("query-blockstats", {}, kQmpDeadline);
    if (stats.ok() && stats.value.is_array())
      blockstats_ = std::move(stats.value);
  }
  co_return registry_.render();
}

std::vector<Sample> Api::block_samples(std::string_view field) const {
  std::vector<Sample> samples;
  if (!blockstats_.is_array())
    return samples;
  for (const auto& device : blockstats_.get_array()) {
    if (!device.is_object())
      continue;
    const auto& d = device.get_object();
    const auto* s = d.if_contains("stats");
    if (!s || !s->is_object())
      continue;
    const auto* value = s->get_object().if_contains(field);
    // The drive's name (disk0: the pet disk), else the block node's (disk-<name>: VM_DISKS), else
    // the device's QOM path.
    std::string id;
    for (const char* key : {"device", "node-name", "qdev"})
      if (const auto* name = d.if_contains(key); id.empty() && name && name->is_string())
        id = std::string(name->get_string());
    if (value && value->is_number())
      samples.push_back({{{"device", id}}, value->to_number<double>()});
  }
  return samples;
}

void Api::register_metrics() {
  static constexpr std::pair<std::string_view, std::string_view> kFields[] = {
      {"rd_bytes", "berth_block_read_bytes_total"},
      {"wr_bytes", "berth_block_written_bytes_total"},
      {"rd_operations", "berth_block_read_operations_total"},
      {"wr_operations", "berth_block_write_operations_total"},
      {"flush_operations", "berth_block_flush_operations_total"}};
  for (const auto& [field, name] : kFields)
    registry_.family(MetricType::kCounter, std::string(name),
                     "Guest block I/O from QMP query-blockstats.",
                     [this, field] { return block_samples(field); });
}

bool Api::authorized(const HttpRequest& request) const {
  if (!token_)
    return true;
  const auto header = request[http::field::authorization];
  if (header.starts_with("Bearer ") && same_secret(header.substr(7), *token_))
    return true;
  // EventSource and <img> cannot send headers: the console has the token as a cookie, set by
  // POST /api/v1/login (HttpOnly, SameSite=Strict, so no other site's page sends it).
  const auto cookie = cookie_value(request[http::field::cookie], kTokenCookie);
  return cookie && same_secret(*cookie, *token_);
}

// DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 (where `kubectl
// port-forward` listens) sends Host: evil.example and a matching Origin. Only names that cannot be
// rebound are accepted: loopback, localhost, and the listen address (any IP literal when that is
// unspecified).
bool Api::host_allowed(std::string_view host) const {
  auto name = host_name(host);
  if (name == "localhost")
    return true;
  if (name.starts_with('[') && name.ends_with(']'))
    name = name.substr(1, name.size() - 2);
  error_code ec;
  const auto address = asio::ip::make_address(std::string(name), ec);
  if (ec)
    return false;
  return address.is_loopback() || address == config_.control_listen.address
         || config_.control_listen.address.is_unspecified();
}

std::optional<HttpReply> Api::screen_control(const HttpRequest& request) const {
  const unsigned version = request.version();
  if (!host_allowed(request[http::field::host]))
    return json_error(http::status::misdirected_request,
                      "the Host header must name 127.0.0.1, localhost, [::1] or the address "
                      "of BERTH_CONTROL_LISTEN (a host name could be rebound to this address)",
                      version);
  if (query_has(query_of(request.target()), "token"))
    return json_error(http::status::bad_request,
                      "the token is not accepted in the URL (it would end up in logs and "
                      "history): send Authorization: Bearer <token>, or log in at / for the "
                      "berth_token cookie",
                      version);
  const auto method = request.method();
  const bool changes_state = method != http::verb::get && method != http::verb::head;
  // Browsers say where a request comes from; a page on another site, even a sibling subdomain,
  // must not change the VM. "none" is the user's own navigation; tools send no such header.
  const auto fetch_site = request["Sec-Fetch-Site"];
  if (changes_state && !fetch_site.empty() && fetch_site != "same-origin" && fetch_site != "none")
    return json_error(http::status::forbidden,
                      "requests from another site (Sec-Fetch-Site) may not change the VM", version);
  // A page on another origin must not drive the VM through the user's browser: cross-origin
  // requests are refused, and POSTs must be JSON (which a plain HTML form cannot send).
  const auto origin = request[http::field::origin];
  if (!origin.empty() && origin != fmt::format("http://{}", request[http::field::host]))
    return json_error(http::status::forbidden, "cross-origin requests are refused", version);
  if (authorized(request))
    return std::nullopt;
  // The console's login form: it holds nothing but a field for the token. A page under /web/
  // gets it in its place too; logging in reloads the page.
  const auto path = path_of(request.target());
  if (method == http::verb::get
      && (path == "/" || (path.starts_with(kWebPrefix) && path.ends_with(".html"))))
    return text_reply(http::status::ok, std::string(kLoginHtml), "text/html; charset=utf-8",
                      version);
  auto reply = json_error(http::status::unauthorized,
                          "a token is required: Authorization: Bearer <token>, or the "
                          "berth_token cookie that POST /api/v1/login sets (the token is in "
                          "<BERTH_RUNTIME_DIR>/control-token and berth's log)",
                          version);
  reply.response.set(http::field::www_authenticate, "Bearer");
  return reply;
}

void Api::add_websocket(std::string path, WebSocketSession session, std::string subprotocol) {
  websockets_[std::move(path)] = {std::move(session), std::move(subprotocol)};
}

asio::awaitable<HttpReply> Api::control(HttpRequest request, asio::ip::tcp::endpoint) {
  const unsigned version = request.version();
  if (auto refused = screen_control(request))
    co_return std::move(*refused);
  const auto path = path_of(request.target());
  if (const auto ws = websockets_.find(path); ws != websockets_.end()) {
    if (!is_websocket_upgrade(request))
      co_return json_error(http::status::upgrade_required, "this path is a WebSocket", version);
    co_return websocket_reply(std::move(request), ws->second.session, ws->second.subprotocol);
  }
  if (path.starts_with(kWebPrefix)
      && (request.method() == http::verb::get || request.method() == http::verb::head))
    co_return co_await web_file(std::move(request));
  if (request.method() == http::verb::get) {
    if (path == "/")
      co_return text_reply(http::status::ok, std::string(kConsoleHtml), "text/html; charset=utf-8",
                           version);
    if (path == "/api/v1/status")
      co_return co_await status(version);
    if (path == "/api/v1/events")
      co_return events();
    if (path == "/api/v1/screenshot.png")
      co_return co_await screenshot(version);
    co_return json_error(http::status::not_found, "no such endpoint", version);
  }
  if (request.method() == http::verb::post)
    co_return co_await control_post(std::move(request));
  co_return json_error(http::status::method_not_allowed, "only GET and POST are served here",
                       version);
}

asio::awaitable<HttpReply> Api::web_file(HttpRequest request) {
  const auto relative = web_file_path(path_of(request.target()));
  if (!relative)
    co_return json_error(http::status::not_found,
                         "no such file: names under /web/ are plain (A-Z a-z 0-9 . _ -), of a "
                         "served type",
                         request.version());
  // noVNC and xterm.js are a few hundred KB: read off the loop.
  auto read = [root = config_.web_dir.value_or(""), file = *relative,
               request = std::move(request)] { return web_file_reply(root, file, request); };
  co_return co_await run_blocking(std::move(read));
}

asio::awaitable<HttpReply> Api::control_post(HttpRequest request) {
  const unsigned version = request.version();
  const auto path = path_of(request.target());
  if (!request[http::field::content_type].starts_with("application/json"))
    co_return json_error(http::status::unsupported_media_type,
                         "POST bodies must be application/json", version);
  static constexpr std::pair<std::string_view, std::string_view> kActions[] = {
      {"/api/v1/powerdown", "system_powerdown"},
      {"/api/v1/reset", "system_reset"},
      {"/api/v1/stop", "stop"},
      {"/api/v1/cont", "cont"}};
  if (path == "/api/v1/login" || path == "/api/v1/logout") {
    auto reply = json_reply(http::status::ok, R"({"status":"ok"})", version);
    if (token_)
      reply.response.set(http::field::set_cookie,
                         path == "/api/v1/login" ? token_cookie(*token_) : token_cookie("", 0));
    co_return reply;
  }
  for (const auto& [action, command] : kActions) {
    if (path == action) {
      std::string qmp_command(command);  // named: no temporaries inside a co_await (GCC 12)
      json::object no_arguments;
      co_return co_await run_qmp(std::move(qmp_command), std::move(no_arguments), version);
    }
  }
  error_code ec;
  if (path == "/api/v1/disks/attach" || path == "/api/v1/disks/detach") {
    auto body = json::parse(request.body(), ec);
    const json::value* disk =
        !ec && body.is_object() ? body.get_object().if_contains("disk") : nullptr;
    if (!disk || !disk->is_string())
      co_return json_error(http::status::bad_request,
                           "expected {\"disk\": \"<name or path of a disk in VM_DISKS>\"}",
                           version);
    std::string wanted(disk->get_string());
    const auto plug = path == "/api/v1/disks/attach" ? Plug::kAttach : Plug::kDetach;
    co_return co_await hotplug(plug, std::move(wanted), version);
  }
  if (path == "/api/v1/fsfreeze" || path == "/api/v1/fsthaw") {
    const auto action = path == "/api/v1/fsfreeze" ? Freeze::kFreeze : Freeze::kThaw;
    co_return co_await fsfreeze(action, version);
  }
  if (path != "/api/v1/qmp")
    co_return json_error(http::status::not_found, "no such endpoint", version);
  auto body = json::parse(request.body(), ec);
  const json::object* object = !ec && body.is_object() ? &body.get_object() : nullptr;
  const json::value* execute = object ? object->if_contains("execute") : nullptr;
  const json::value* arguments = object ? object->if_contains("arguments") : nullptr;
  if (!execute || !execute->is_string() || (arguments && !arguments->is_object()))
    co_return json_error(http::status::bad_request,
                         "expected {\"execute\": \"<command>\", \"arguments\": {...}}", version);
  // Named locals: GCC 12 mishandles temporaries of a conditional inside a co_await operand.
  std::string command(execute->get_string());
  json::object args;
  if (arguments)
    args = arguments->get_object();
  co_return co_await run_qmp(std::move(command), std::move(args), version);
}

asio::awaitable<HttpReply> Api::fsfreeze(Freeze action, unsigned version) {
  GuestAgent* agent = state_.guest_agent();
  if (agent == nullptr)
    co_return json_error(http::status::conflict, "the VM has no guest agent channel", version);
  log_->info("control API: {}", action == Freeze::kFreeze ? "fsfreeze" : "fsthaw");
  FreezeOutcome outcome;  // no ?: with co_await in both branches (GCC 12)
  if (action == Freeze::kFreeze)
    outcome = co_await agent->freeze();
  else
    outcome = co_await agent->thaw();
  if (outcome.status == FreezeOutcome::Status::kNoAgent)
    co_return json_error(http::status::conflict, outcome.reason, version);
  if (outcome.status == FreezeOutcome::Status::kFailed)
    co_return json_error(http::status::bad_gateway, outcome.reason, version);
  json::object body;
  body["status"] = "ok";
  body["filesystems"] = outcome.filesystems;
  body["frozen"] = agent->frozen();
  if (action == Freeze::kFreeze)
    body["thaw_within_seconds"] = agent->auto_thaw().count();
  co_return json_reply(http::status::ok, json::serialize(body), version);
}

asio::awaitable<HttpReply> Api::status(unsigned version) {
  json::object body;
  body["phase"] = phase_name(state_.phase());
  body["hostname"] = state_.hostname();
  body["accel"] = state_.accel();
  body["uptime_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - state_.started()).count();
  body["vm_ip"] = state_.vm_ip().to_string();
  body["lease_given"] = state_.lease_given();
  body["qemu_starts"] = state_.qemu_starts();
  body["vnc"] = config_.vnc;
  body["viewer"] = config_.viewer;
  json::array allowed;
  for (auto command : qmp::remote_commands())
    allowed.emplace_back(command);
  body["qmp_allowed"] = std::move(allowed);
  auto qmp = state_.qmp();
  body["vm"] = nullptr;
  if (qmp && qmp->connected()) {
    const auto result = co_await qmp->execute("query-status", {}, kQmpDeadline);
    if (result.ok())
      body["vm"] = result.value;
  }
  body["guest_agent"] = nullptr;
  if (const GuestAgent* agent = state_.guest_agent())
    body["guest_agent"] = agent->status();
  co_return json_reply(http::status::ok, json::serialize(body), version);
}

asio::awaitable<HttpReply> Api::run_qmp(std::string command, json::object arguments,
                                        unsigned version) {
  if (!qmp::remote_command_allowed(command)) {
    log_->warn("control API: refused QMP command \"{}\" (not on the allow-list)", command);
    co_return json_error(http::status::forbidden,
                         fmt::format("QMP command \"{}\" is not allowed through the control API; "
                                     "GET /api/v1/status lists the allowed ones",
                                     command),
                         version);
  }
  auto qmp = state_.qmp();
  if (!qmp || !qmp->connected())
    co_return json_error(http::status::conflict, "the VM is not running", version);
  log_->info("control API: QMP {}", command);
  const auto result = co_await qmp->execute(command, std::move(arguments), 5s);
  if (result.transport)
    co_return json_error(http::status::gateway_timeout, "QMP: " + result.describe(), version);
  if (result.error)
    co_return json_error(http::status::unprocessable_entity, "QMP: " + result.describe(), version);
  json::object body;
  body["return"] = result.value;
  co_return json_reply(http::status::ok, json::serialize(body), version);
}

namespace {

// Whether QEMU has the device `id` (qom-list of /machine/peripheral); nullopt when QMP failed.
asio::awaitable<std::optional<bool>> has_device(std::shared_ptr<qmp::Client> qmp, std::string id) {
  json::object arguments{{"path", "/machine/peripheral"}};
  std::string command = "qom-list";
  const auto listed = co_await qmp->execute(std::move(command), std::move(arguments), kQmpDeadline);
  if (!listed.ok() || !listed.value.is_array())
    co_return std::nullopt;
  for (const auto& child : listed.value.get_array())
    if (const auto* name = child.is_object() ? child.get_object().if_contains("name") : nullptr;
        name && name->is_string() && name->get_string() == id)
      co_return true;
  co_return false;
}

constexpr auto kUnplugWait = 60s;  // the guest's release of an unplugged disk (slow under TCG)

}  // namespace

asio::awaitable<HttpReply> Api::hotplug(Plug plug, std::string wanted, unsigned version) {
  const bool attach = plug == Plug::kAttach;
  const auto* disk = find_data_disk(state_.data_disks(), config_.vm_disks, wanted);
  if (!disk) {
    log_->warn("control API: refused to {} \"{}\": not a disk of VM_DISKS",
               attach ? "attach" : "detach", wanted);
    co_return json_error(http::status::forbidden,
                         fmt::format("\"{}\" is not a disk of VM_DISKS; only those may be "
                                     "attached or detached",
                                     wanted),
                         version);
  }
  auto qmp = state_.qmp();
  if (!qmp || !qmp->connected())
    co_return json_error(http::status::conflict, "the VM is not running", version);
  const std::string id = qemu::data_disk_id(disk->name);
  auto present = co_await has_device(qmp, id);
  if (!present)
    co_return json_error(http::status::bad_gateway, "QMP qom-list failed", version);
  if (*present == attach)
    co_return json_error(
        http::status::conflict,
        fmt::format("the disk \"{}\" is already {}", disk->name, attach ? "attached" : "detached"),
        version);
  json::object node_name{{"node-name", id}};
  if (attach) {
    std::string add_command = "blockdev-add";
    auto node = qemu::blockdev_add_arguments(*disk);
    auto added = co_await qmp->execute(std::move(add_command), std::move(node), 5s);
    if (!added.ok())
      co_return json_error(http::status::bad_gateway, "blockdev-add: " + added.describe(), version);
    auto device = qemu::device_add_arguments(*disk, state_.disk_queues());
    std::string plug_command = "device_add";
    auto plugged = co_await qmp->execute(std::move(plug_command), std::move(device), 5s);
    if (!plugged.ok()) {
      std::string del_command = "blockdev-del";
      co_await qmp->execute(std::move(del_command), std::move(node_name), 5s);
      co_return json_error(http::status::bad_gateway, "device_add: " + plugged.describe(), version);
    }
  } else {
    json::object device{{"id", id}};
    std::string unplug_command = "device_del";
    auto unplugged = co_await qmp->execute(std::move(unplug_command), std::move(device), 5s);
    if (!unplugged.ok())
      co_return json_error(http::status::bad_gateway, "device_del: " + unplugged.describe(),
                           version);
    // The guest releases the device in its own time (PCIe hotplug); the node goes after it.
    asio::steady_timer timer(io_);
    const auto deadline = std::chrono::steady_clock::now() + kUnplugWait;
    for (;;) {
      present = co_await has_device(qmp, id);
      if (!present || !*present || std::chrono::steady_clock::now() >= deadline)
        break;
      timer.expires_after(250ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
    if (!present || *present)
      co_return json_error(http::status::gateway_timeout,
                           fmt::format("the guest has not released the disk \"{}\" yet; QEMU "
                                       "removes it once it does (ask again to see)",
                                       disk->name),
                           version);
    std::string del_command = "blockdev-del";
    auto deleted = co_await qmp->execute(std::move(del_command), std::move(node_name), 5s);
    if (!deleted.ok())
      co_return json_error(http::status::bad_gateway, "blockdev-del: " + deleted.describe(),
                           version);
  }
  log_->info("control API: {} the data disk \"{}\" ({})", attach ? "attached" : "detached",
             disk->name, disk->path.string());
  co_return json_reply(http::status::ok,
                       fmt::format(R"({{"disk":"{}","attached":{}}})", disk->name, attach),
                       version);
}

asio::awaitable<HttpReply> Api::screenshot(unsigned version) {
  if (!config_.vnc && !config_.viewer)
    co_return json_error(http::status::conflict,
                         "no display: NO_VNC is set and BERTH_VIEWER is off", version);
  auto qmp = state_.qmp();
  if (!qmp || !qmp->connected())
    co_return json_error(http::status::conflict, "the VM is not running", version);
  // The path is ours, never the caller's. QEMU may not create files in the runtime folder, so
  // berth creates the file for it to write.
  const auto path = config_.runtime_dir / "screenshot.png";
  if (auto made = make_file_for_qemu(path, config_.qemu_user); !made)
    co_return json_error(http::status::internal_server_error, made.error().message, version);
  json::object arguments;
  arguments["filename"] = path.string();
  arguments["format"] = "png";
  const auto result = co_await qmp->execute("screendump", std::move(arguments), 5s);
  if (!result.ok())
    co_return json_error(http::status::bad_gateway, "screendump: " + result.describe(), version);
  // A screen dump is a few MB at most, but on a slow volume its read can stall the loop.
  auto read_and_remove = [path] {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    return out.str();
  };
  auto png = co_await run_blocking(std::move(read_and_remove));
  co_return text_reply(http::status::ok, std::move(png), "image/png", version);
}

HttpReply Api::events() {
  HttpReply reply{HttpResponse(http::status::ok, 11), {}, {}};
  reply.response.set(http::field::content_type, "text/event-stream");
  reply.response.set(http::field::cache_control, "no-store");
  reply.response.keep_alive(false);  // the stream ends when the connection does
  reply.stream = [this](beast::tcp_stream& stream) -> asio::awaitable<void> {
    auto queue = std::make_shared<std::deque<std::string>>();
    auto wake = std::make_shared<asio::steady_timer>(io_);
    const auto token = state_.events().subscribe([queue, wake](const qmp::Event& event) {
      if (queue->size() >= 256)
        queue->pop_front();  // a slow reader loses the oldest
      json::object object;
      object["event"] = event.name;
      object["data"] = event.data;
      object["timestamp"] = event.timestamp;
      queue->push_back("event: qmp\ndata: " + json::serialize(object) + "\n\n");
      wake->cancel();
    });
    std::string chunk = "retry: 2000\n\n";
    for (;;) {
      stream.expires_after(10s);
      error_code ec;
      co_await asio::async_write(stream, asio::buffer(chunk),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec)
        break;
      if (queue->empty()) {
        wake->expires_after(15s);
        co_await wake->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      chunk.clear();
      while (!queue->empty()) {
        chunk += queue->front();
        queue->pop_front();
      }
      if (chunk.empty())
        chunk = ": keep-alive\n\n";
    }
    state_.events().unsubscribe(token);
  };
  return reply;
}

}  // namespace berth
