// The meshbus CLI's event-store commands (issue 5): the store registry
// (`announce-store`, `stores`, `store-info`), subscriptions, the store leader
// (`store-leader`, and `lead-store` to run a candidate), and the emitter and
// tracker groups (`emitters`, `trackers`).
#include <iostream>
#include <map>
#include <string>
#include <thread>

#include "bin/cli.h"
#include "sdk/eventstore.h"
#include "sdk/store_leader.h"
#include "sdk/store_registry.h"

namespace meshbus::cli {
namespace {

namespace es = meshbus::eventstore;

// Microseconds since the epoch as UTC ISO 8601, to the millisecond.
std::string IsoTime(int64_t epoch_us) {
  std::time_t secs = static_cast<std::time_t>(epoch_us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>((epoch_us / 1000) % 1000));
  return out;
}

OrderedJson OptionsJson(const std::map<std::string, std::string>& options) {
  OrderedJson o = OrderedJson::object();
  for (const auto& [k, v] : options) o[k] = v;
  return o;
}

OrderedJson EntryJson(const es::StoreEntry& e) {
  return OrderedJson{{"store", e.config.store_id},
                     {"node", e.node},
                     {"announcer", e.announcer.ToString()},
                     {"registered_at", IsoTime(e.registered_at_us)},
                     {"registered_at_us", e.registered_at_us},
                     {"mode", es::StoreModeName(e.config.mode)},
                     {"data_dir", e.config.data_dir},
                     {"timeout_ms", e.config.timeout_ms},
                     {"writer_pool", e.config.writer_pool},
                     {"reader_pool", e.config.reader_pool},
                     {"gateway_pool", e.config.gateway_pool},
                     {"options", OptionsJson(e.config.options)}};
}

void PrintEntries(const std::vector<es::StoreEntry>& entries, bool json) {
  if (json) {
    OrderedJson doc = OrderedJson::array();
    for (const es::StoreEntry& e : entries) doc.push_back(EntryJson(e));
    PrintOrderedJson(doc);
    return;
  }
  Table t({"STORE", "NODE", "MODE", "DATA DIR", "REGISTERED", "ANNOUNCER"});
  for (const es::StoreEntry& e : entries) {
    t.Add({e.config.store_id, e.node, std::string(es::StoreModeName(e.config.mode)),
           e.config.data_dir.empty() ? "-" : e.config.data_dir, IsoTime(e.registered_at_us),
           e.announcer.ToString()});
  }
  t.Print(std::cout);
}

// ---- announce-store -----------------------------------------------------------

struct AnnounceArgs {
  std::string store;
  std::string mode = "single";
  std::string data_dir;
  std::vector<std::string> options;  // key=value
  std::optional<double> hold_seconds;
};

int RunAnnounce(const Global& global, const AnnounceArgs& args) {
  InstallStopHandlers();
  es::StoreConfig config;
  config.store_id = args.store;
  config.data_dir = args.data_dir;
  std::optional<es::StoreMode> mode = es::ParseStoreMode(args.mode);
  if (!mode)
    return Fail(Status::InvalidArgument("mode '" + args.mode + "' is not single or cluster"));
  config.mode = *mode;
  for (const std::string& kv : args.options) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(Status::InvalidArgument("option '" + kv + "' is not KEY=VALUE"));
    }
    config.options[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (Status s = es::ValidateStoreConfig(config); !s.ok()) return Fail(s);
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  const std::string name = es::StoreName(config.store_id, client->node());
  // Watched from before announcing, so that no retirement is missed.
  if (Result<meshbus::NamesMonitorStart> w = client->MonitorNames(name); !w.ok()) {
    return Fail(w.status());
  }
  if (Status s = es::AnnounceStore(*client, config); !s.ok()) return FailWithCode(s);
  std::cout << "announced " << config.store_id << " on " << client->node() << " as "
            << client->self().ToString() << std::endl;
  Status held = HoldName(*client, name, "the announcement of " + config.store_id,
                         DeadlineAfter(args.hold_seconds));
  if (!held.ok()) return Fail(held);
  if (Status s = client->Close(); !s.ok()) return Fail(s);
  return 0;
}

// ---- stores, store-info --------------------------------------------------------

struct StoresArgs {
  std::string node;  // empty: every node
  bool json = false;
};

int RunStores(const Global& global, const StoresArgs& args) {
  if (!args.node.empty()) {
    if (Status s = meshbus::ValidateNodeName(args.node); !s.ok()) return Fail(s);
  }
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<std::vector<es::StoreEntry>> entries =
      args.node.empty() ? es::ListStores(*client) : es::ListStoresOnNode(*client, args.node);
  if (!entries.ok()) return FailWithCode(entries.status());
  PrintEntries(*entries, args.json);
  return 0;
}

struct StoreInfoArgs {
  std::string store;
  bool json = false;
};

int RunStoreInfo(const Global& global, const StoreInfoArgs& args) {
  if (Status s = es::ValidateStoreId(args.store); !s.ok()) return Fail(s);
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<std::vector<es::StoreEntry>> entries = es::StoreInfo(*client, args.store);
  if (!entries.ok()) return FailWithCode(entries.status());
  if (args.json) {
    PrintEntries(*entries, true);
    return 0;
  }
  bool first = true;
  for (const es::StoreEntry& e : *entries) {
    if (!first) std::cout << "\n";
    first = false;
    Table t({"store", e.config.store_id});
    t.Add({"node", e.node});
    t.Add({"announcer", e.announcer.ToString()});
    t.Add({"registered", IsoTime(e.registered_at_us)});
    t.Add({"mode", std::string(es::StoreModeName(e.config.mode))});
    t.Add({"data dir", e.config.data_dir.empty() ? "-" : e.config.data_dir});
    t.Add({"timeout", std::to_string(e.config.timeout_ms) + " ms"});
    t.Add({"pools", "writer " + std::to_string(e.config.writer_pool) + ", reader " +
                        std::to_string(e.config.reader_pool) + ", gateway " +
                        std::to_string(e.config.gateway_pool)});
    for (const auto& [k, v] : e.config.options) t.Add({"option " + k, v});
    t.Print(std::cout);
  }
  return 0;
}

// ---- subscriptions --------------------------------------------------------------

struct SubscriptionsArgs {
  std::string store;
  bool json = false;
};

int RunSubscriptions(const Global& global, const SubscriptionsArgs& args) {
  if (Status s = es::ValidateStoreId(args.store); !s.ok()) return Fail(s);
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  std::vector<std::string> bad;
  Result<std::vector<es::Subscription>> subs =
      es::ListSubscriptions(*client, args.store, /*consistent=*/false, &bad);
  if (!subs.ok()) return FailWithCode(subs.status());
  for (const std::string& key : bad) {
    std::cerr << "meshbus: record " << key << " is not a valid subscription; left out\n";
  }
  if (args.json) {
    OrderedJson doc = OrderedJson::array();
    for (const es::Subscription& s : *subs) {
      doc.push_back({{"id", s.id},
                     {"type", es::SubscriptionTypeName(s.type)},
                     {"selector", s.selector},
                     {"name", s.name},
                     {"pool_size", s.pool_size},
                     {"checkpoint", s.checkpoint ? OrderedJson(*s.checkpoint) : OrderedJson()},
                     {"options", OptionsJson(s.options)}});
    }
    PrintOrderedJson(doc);
    return 0;
  }
  Table t({"ID", "TYPE", "SELECTOR", "POOL", "CHECKPOINT", "NAME"});
  for (const es::Subscription& s : *subs) {
    t.Add({s.id, std::string(es::SubscriptionTypeName(s.type)),
           s.selector.empty() ? "-" : s.selector, std::to_string(s.pool_size),
           s.checkpoint ? std::to_string(*s.checkpoint) : "-", s.name});
  }
  t.Print(std::cout);
  return 0;
}

// ---- store-leader, lead-store ---------------------------------------------------

struct StoreLeaderArgs {
  std::string store;
  bool json = false;
};

int RunStoreLeader(const Global& global, const StoreLeaderArgs& args) {
  if (Status s = es::ValidateStoreId(args.store); !s.ok()) return Fail(s);
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<es::StoreLeaderInfo> info = es::StoreLeaderOf(*client, args.store);
  if (!info.ok()) return FailWithCode(info.status());
  if (args.json) {
    PrintOrderedJson(OrderedJson{{"store", args.store},
                                 {"node", info->holder.node},
                                 {"member", info->holder.ToString()},
                                 {"active", info->active}});
  } else {
    Table t({"store", args.store});
    t.Add({"node", info->holder.node});
    t.Add({"member", info->holder.ToString()});
    t.Add({"active", info->active ? "yes" : "no (starting its pools)"});
    t.Print(std::cout);
  }
  return 0;
}

struct LeadStoreArgs {
  std::string store;
  std::optional<double> hold_seconds;
};

// Runs a candidate until stopped, printing when it becomes active or stops
// being so, and the pools it runs.
int RunLeadStore(const Global& global, const LeadStoreArgs& args) {
  InstallStopHandlers();
  if (Status s = es::ValidateStoreId(args.store); !s.ok()) return Fail(s);
  es::StoreLeaderOptions o;
  o.client.endpoint = global.broker;
  o.client.call_timeout = milliseconds(global.timeout_ms);
  o.client.connect_timeout = milliseconds(global.timeout_ms);
  o.store = args.store;
  Result<std::unique_ptr<es::StoreLeader>> leader = [&] {
    SetStopSignalsBlocked(true);  // the candidate's threads leave the signals to this one
    auto l = es::StoreLeader::Start(o);
    SetStopSignalsBlocked(false);
    return l;
  }();
  if (!leader.ok()) return Fail(leader.status());
  std::cout << "candidate for " << args.store << " as " << (*leader)->self().ToString()
            << std::endl;
  const Clock::time_point deadline = DeadlineAfter(args.hold_seconds);
  bool was_active = false;
  std::map<std::string, uint32_t> pools;
  while (!StopRequested() && Clock::now() < deadline) {
    bool active = (*leader)->IsActive();
    std::map<std::string, uint32_t> now = (*leader)->Pools();
    if (active != was_active || now != pools) {
      std::string list;
      for (const auto& [id, n] : now) list += " " + id + "=" + std::to_string(n);
      std::cout << (active ? "active" : "standby") << (list.empty() ? "" : ", pools:" + list)
                << std::endl;
      was_active = active;
      pools = std::move(now);
    }
    std::this_thread::sleep_for(kReceiveSlice);  // polls the candidate's state for printing
  }
  (*leader)->Stop();
  return 0;
}

// ---- emitters, trackers ---------------------------------------------------------

struct GroupArgs {
  std::string store, key;  // key: a subscription or a feature
  bool json = false;
};

int RunEmitters(const Global& global, const GroupArgs& args) {
  if (Status s = es::ValidateStoreId(args.store); !s.ok()) return Fail(s);
  if (Status s = es::ValidateSubscriptionId(args.key); !s.ok()) return Fail(s);
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<std::vector<MemberId>> members = es::EmitterMembers(*client, args.store, args.key);
  if (!members.ok()) return FailWithCode(members.status());
  Result<std::optional<std::vector<std::string>>> names =
      es::RetrieveEmitters(*client, args.store, args.key);
  if (!names.ok()) return FailWithCode(names.status());
  if (args.json) {
    PrintOrderedJson(OrderedJson{
        {"store", args.store},
        {"subscription", args.key},
        {"topic", es::SubscriptionTopic(args.store, args.key)},
        {"members", IdsJson(*members)},
        {"persisted_names", names->has_value() ? OrderedJson(**names) : OrderedJson()}});
    return 0;
  }
  Table t({"topic", es::SubscriptionTopic(args.store, args.key)});
  t.Add({"emitters", std::to_string(members->size())});
  std::string kept = "-";
  if (names->has_value()) {
    kept.clear();
    for (const std::string& n : **names) kept += (kept.empty() ? "" : " ") + n;
  }
  t.Add({"persisted names", kept});
  t.Print(std::cout);
  for (const MemberId& m : *members) std::cout << m.ToString() << "\n";
  return 0;
}

int RunTrackers(const Global& global, const GroupArgs& args) {
  if (Status s = es::ValidateStoreId(args.store); !s.ok()) return Fail(s);
  if (Status s = es::ValidateFeature(args.key); !s.ok()) return Fail(s);
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<std::vector<MemberId>> members = es::TrackerMembers(*client, args.store, args.key);
  if (!members.ok()) return FailWithCode(members.status());
  if (args.json) {
    PrintOrderedJson(
        OrderedJson{{"store", args.store}, {"feature", args.key}, {"members", IdsJson(*members)}});
    return 0;
  }
  for (const MemberId& m : *members) std::cout << m.ToString() << "\n";
  return 0;
}

}  // namespace

std::vector<Command> AddEventStoreCommands(CLI::App& app, const Global& global) {
  std::vector<Command> out;
  {
    auto args = std::make_shared<AnnounceArgs>();
    CLI::App* cmd = app.add_subcommand(
        "announce-store",
        "Announce a store on this broker's node and hold it until stopped (exit 5: announced "
        "here by another process)");
    cmd->add_option("store", args->store, "Store id")->required();
    cmd->add_option("--mode", args->mode, "single or cluster")->capture_default_str();
    cmd->add_option("--data-dir", args->data_dir, "The store's data directory");
    cmd->add_option("--option", args->options, "A free-form KEY=VALUE option (repeatable)");
    cmd->add_option("--hold", args->hold_seconds,
                    "Retire it after this many seconds (default: on SIGINT/SIGTERM)")
        ->check(AtLeast(0));
    out.push_back(Bind(cmd, args, global, RunAnnounce));
  }
  {
    auto args = std::make_shared<StoresArgs>();
    CLI::App* cmd = app.add_subcommand("stores", "Announced stores, one row per (store, node)");
    cmd->add_option("--node", args->node, "Only the stores announced on this node");
    cmd->add_flag("--json", args->json, "Print JSON");
    out.push_back(Bind(cmd, args, global, RunStores));
  }
  {
    auto args = std::make_shared<StoreInfoArgs>();
    CLI::App* cmd =
        app.add_subcommand("store-info", "A store's config on every node it is announced on");
    cmd->add_option("store", args->store, "Store id")->required();
    cmd->add_flag("--json", args->json, "Print JSON");
    out.push_back(Bind(cmd, args, global, RunStoreInfo));
  }
  {
    auto args = std::make_shared<SubscriptionsArgs>();
    CLI::App* cmd = app.add_subcommand("subscriptions", "A store's subscriptions");
    cmd->add_option("store", args->store, "Store id")->required();
    cmd->add_flag("--json", args->json, "Print JSON");
    out.push_back(Bind(cmd, args, global, RunSubscriptions));
  }
  {
    auto args = std::make_shared<StoreLeaderArgs>();
    CLI::App* cmd = app.add_subcommand("store-leader",
                                       "Which member leads a store, and whether it is active yet");
    cmd->add_option("store", args->store, "Store id")->required();
    cmd->add_flag("--json", args->json, "Print JSON");
    out.push_back(Bind(cmd, args, global, RunStoreLeader));
  }
  {
    auto args = std::make_shared<LeadStoreArgs>();
    CLI::App* cmd = app.add_subcommand(
        "lead-store",
        "Run a leader candidate for a store until stopped: when it leads, it runs the "
        "store's emitter pools");
    cmd->add_option("store", args->store, "Store id")->required();
    cmd->add_option("--hold", args->hold_seconds,
                    "Stop after this many seconds (default: on SIGINT/SIGTERM)")
        ->check(AtLeast(0));
    out.push_back(Bind(cmd, args, global, RunLeadStore));
  }
  {
    auto args = std::make_shared<GroupArgs>();
    CLI::App* cmd = app.add_subcommand(
        "emitters", "The emitters of a store's subscription, and their persisted names");
    cmd->add_option("store", args->store, "Store id")->required();
    cmd->add_option("subscription", args->key, "Subscription id ($all for every event)")
        ->required();
    cmd->add_flag("--json", args->json, "Print JSON");
    out.push_back(Bind(cmd, args, global, RunEmitters));
  }
  {
    auto args = std::make_shared<GroupArgs>();
    CLI::App* cmd = app.add_subcommand("trackers", "The trackers of a store's feature");
    cmd->add_option("store", args->store, "Store id")->required();
    cmd->add_option("feature", args->key, "Feature, e.g. subscriptions, streams, snapshots")
        ->required();
    cmd->add_flag("--json", args->json, "Print JSON");
    out.push_back(Bind(cmd, args, global, RunTrackers));
  }
  return out;
}

}  // namespace meshbus::cli
