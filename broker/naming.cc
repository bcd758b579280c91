// The name registry (DESIGN.md §5): the broker's driver of its Raft core
// (ticks, messages, persistence, applying committed commands), client calls,
// forwarding of writes and consistent reads to the leader, name monitors,
// and releasing the names of ended sessions and dead nodes.
//
// A write's life: the client's broker sends it to the leader (or proposes it,
// being the leader); the leader answers once the entry it proposed is
// committed and applied, with the registry's verdict. An answer of
// `no_leader` always means "not done", so the caller's broker may try again
// on the next leader; a call whose leader died or went quiet may or may not
// have taken effect, and says so.
#include <algorithm>

#include "broker/broker_loop.h"

namespace meshbus {
namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

// The command's name or record key, for messages; "" for releases.
std::string NameOf(const registry::Command& command) {
  if (const auto* r = std::get_if<registry::Register>(&command)) return r->name;
  if (const auto* u = std::get_if<registry::Unregister>(&command)) return u->name;
  if (const auto* p = std::get_if<registry::PutRecord>(&command)) return p->key;
  if (const auto* c = std::get_if<registry::CreateRecord>(&command)) return c->key;
  if (const auto* d = std::get_if<registry::DeleteRecord>(&command)) return d->key;
  return "";
}

bool IsRecordCommand(const registry::Command& command) {
  return std::holds_alternative<registry::PutRecord>(command) ||
         std::holds_alternative<registry::CreateRecord>(command) ||
         std::holds_alternative<registry::DeleteRecord>(command);
}

std::vector<wire::Record> ToWire(std::vector<registry::RecordEntry> records) {
  std::vector<wire::Record> out;
  out.reserve(records.size());
  for (registry::RecordEntry& r : records) out.push_back({std::move(r.key), std::move(r.value)});
  return out;
}

Status VerdictStatus(const registry::Outcome& outcome, const std::string& name) {
  std::string holder = outcome.holder ? outcome.holder->ToString() : "?";
  switch (outcome.verdict) {
    case registry::Verdict::kOk:
      return Status::Ok();
    case registry::Verdict::kTaken:
      return Status::Taken("'" + name + "' is held by " + holder);
    case registry::Verdict::kNotRegistered:
      return Status::NotRegistered("nobody holds '" + name + "'");
    case registry::Verdict::kNotHolder:
      return Status::NotHolder("'" + name + "' is held by " + holder + ", not by this member");
    case registry::Verdict::kHolderGone:
      return Status::Unavailable(
          "the registry's leader declared this member's broker dead and released its names; "
          "its members can register again once the leader hears from it");
    case registry::Verdict::kExists:
      return Status::Exists("record '" + name + "' exists");
    case registry::Verdict::kNoRecord:
      return Status::NotFound("no record '" + name + "'");
  }
  return Status::Internal("unknown verdict");
}

}  // namespace

// ---- start-up ---------------------------------------------------------------

Status BrokerLoop::StartRegistry() {
  voters_ = options_.voters;
  std::sort(voters_.begin(), voters_.end());
  // Alone, a broker is a registry of its own; with seeds it follows theirs,
  // never a second registry beside the first.
  if (voters_.empty() && options_.seeds.empty()) voters_ = {self_.node};
  if (!options_.data_dir.empty()) {
    raft::RaftStorage::Recovered recovered;
    Result<std::unique_ptr<raft::RaftStorage>> storage =
        raft::RaftStorage::Open(options_.data_dir, &recovered);
    if (!storage.ok()) {
      return Status(storage.status().code(),
                    "registry data dir " + options_.data_dir + ": " + storage.status().message());
    }
    raft_storage_ = std::move(storage.value());
    if (!recovered.warning.empty()) log_.Log(LogLevel::kWarn, "registry: " + recovered.warning);
    recovered_ = std::move(recovered.state);
  }
  if (recovered_.snapshot.index > 0) {
    if (Status s = registry_.Restore(recovered_.snapshot.data); !s.ok()) {
      return Status::InvalidArgument("registry data dir " + options_.data_dir +
                                     ": the snapshot does not restore: " + s.message());
    }
  }
  return voters_.empty() ? Status::Ok() : CreateRaft();
}

Status BrokerLoop::CreateRaft() {
  raft::Config config;
  config.self = self_.node;
  config.voters = voters_;
  config.seed = self_.incarnation;
  uint64_t recovered_to = recovered_.snapshot.index + recovered_.entries.size();
  uint64_t term = recovered_.hard_state.term;
  Result<raft::Raft> r = raft::Raft::Create(config, std::move(recovered_));
  recovered_ = {};
  if (!r.ok()) return Status(r.status().code(), "registry: " + r.status().message());
  raft_.emplace(std::move(r.value()));
  bool votes = std::binary_search(voters_.begin(), voters_.end(), self_.node);
  log_.Log(LogLevel::kInfo,
           "registry: voters " + JoinNames(voters_) +
               (votes ? "; this broker votes" : "; this broker follows without voting") +
               (options_.data_dir.empty() ? ", state in memory only"
                                          : ", state in " + options_.data_dir) +
               (recovered_to > 0 ? ", recovered log to " + std::to_string(recovered_to) +
                                       " in term " + std::to_string(term)
                                 : ""));
  return Status::Ok();
}

std::string BrokerLoop::RegistryProblem() const {
  if (!raft_failure_.empty()) return raft_failure_;
  if (voters_.empty()) {
    return "the registry's voters are not known: this broker has no --voters and has met no "
           "broker that has";
  }
  if (voter_conflicts_.empty()) return "";
  std::string p = "voter sets differ (this broker: " + JoinNames(voters_) + "; ";
  for (const auto& [node, voters] : voter_conflicts_) p += node + ": " + JoinNames(voters) + "; ";
  return p +
         "brokers with different sets ignore each other's registry; give every broker the "
         "same --voters)";
}

// ---- client calls -----------------------------------------------------------

void BrokerLoop::OnNameRequest(Session& session, const std::string& rid,
                               wire::ClientRequest& request, TimePoint now) {
  MemberId me{self_.node, self_.incarnation, session.id};
  std::visit(
      [&](auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, wire::Register>) {
          session.registered = true;
          NameCall call;
          call.session = session.id;
          call.req = r.req;
          call.data = registry::EncodeCommand(registry::Register{r.name, me, r.metadata});
          call.name = r.name;
          StartNameCall(std::move(call), now);
        } else if constexpr (std::is_same_v<T, wire::Unregister>) {
          NameCall call;
          call.session = session.id;
          call.req = r.req;
          call.data = registry::EncodeCommand(registry::Unregister{r.name, me});
          call.name = r.name;
          // Retried after the leader died, an unregister that took effect
          // would answer not_registered: the caller is told "unknown" instead.
          call.retry_if_leader_dies = false;
          StartNameCall(std::move(call), now);
        } else if constexpr (std::is_same_v<T, wire::Whereis>) {
          if (r.consistent) {
            NameCall call;
            call.session = session.id;
            call.req = r.req;
            call.op = wire::NameCallOp::kConsistentRead;
            call.data = r.name;
            call.name = r.name;
            StartNameCall(std::move(call), now);
            return;
          }
          std::optional<registry::Entry> e = registry_.Whereis(r.name);
          if (!e) {
            Reply(rid, r.req, Status::NotRegistered("nobody holds '" + r.name + "'"));
            return;
          }
          Reply(rid, r.req, Status::Ok(), wire::NameInfo{e->name, e->holder, e->metadata});
        } else if constexpr (std::is_same_v<T, wire::ListNames> ||
                             std::is_same_v<T, wire::MonitorNames>) {
          wire::NamesBody body;
          if constexpr (std::is_same_v<T, wire::MonitorNames>) {
            body.ref = next_monitor_++;
            name_monitors_[body.ref] = NameMonitor{session.id, r.prefix};
            session.name_monitors.insert(body.ref);
          }
          for (registry::Entry& e : registry_.Names(r.prefix)) {
            body.names.push_back({std::move(e.name), e.holder, std::move(e.metadata)});
          }
          Reply(rid, r.req, Status::Ok(), std::move(body));
        } else if constexpr (std::is_same_v<T, wire::PutRecord> ||
                             std::is_same_v<T, wire::DeleteRecord>) {
          // Records belong to no member: any session may write any of them.
          NameCall call;
          call.session = session.id;
          call.req = r.req;
          call.name = r.key;
          if constexpr (std::is_same_v<T, wire::PutRecord>) {
            if (r.mode == wire::RecordMode::kCreate) {
              call.data = registry::EncodeCommand(registry::CreateRecord{r.key, r.value});
              // Retried after it took effect, it would answer `exists`.
              call.retry_if_leader_dies = false;
            } else {
              call.data = registry::EncodeCommand(registry::PutRecord{r.key, r.value});
            }
          } else {
            call.data = registry::EncodeCommand(registry::DeleteRecord{r.key});
            call.retry_if_leader_dies = false;  // a retry would answer not_found
          }
          StartNameCall(std::move(call), now);
        } else if constexpr (std::is_same_v<T, wire::ListRecords>) {
          if (r.consistent) {
            NameCall call;
            call.session = session.id;
            call.req = r.req;
            call.op = r.exact ? wire::NameCallOp::kConsistentRecord
                              : wire::NameCallOp::kConsistentRecords;
            call.data = r.prefix;
            call.name = r.prefix;
            StartNameCall(std::move(call), now);
            return;
          }
          wire::RecordsBody body;
          if (r.exact) {
            std::optional<std::string> value = registry_.Record(r.prefix);
            if (!value) {
              Reply(rid, r.req, Status::NotFound("no record '" + r.prefix + "'"));
              return;
            }
            body.records.push_back({r.prefix, std::move(*value)});
          } else {
            body.records = ToWire(registry_.Records(r.prefix));
          }
          Reply(rid, r.req, Status::Ok(), std::move(body));
        } else if constexpr (std::is_same_v<T, wire::Leader>) {
          // Replication progress is known to the leader only: ask it.
          std::string leader = KnownLeader(now);
          if (!leader.empty() && leader != self_.node) {
            uint64_t id = next_name_call_++;
            if (SendToPeer(leader, wire::PeerRegistryStatus{self_, id, false, {}})) {
              status_calls_[id] = StatusCall{session.id, r.req, leader, now + kStatusTimeout};
              return;
            }
          }
          Reply(rid, r.req, Status::Ok(), LeaderStatus());
        }
      },
      request);
}

void BrokerLoop::OnSendName(Session& session, wire::SendName& send, RequestPayload& payload,
                            TimePoint now) {
  std::optional<registry::Entry> e = registry_.Whereis(send.name);
  if (!e) {
    ++counters_.dispatch_failures;
    Reply(session.routing_id, send.req, Status::NotRegistered("nobody holds '" + send.name + "'"));
    return;
  }
  wire::ClientRequest as_send = wire::Send{send.req, e->holder};
  OnMessagingRequest(session, as_send, payload, now);
}

void BrokerLoop::StartNameCall(NameCall call, TimePoint now) {
  if (call.session != 0) ++counters_.name_calls;
  if (!raft_) {
    ++counters_.name_no_leader;
    if (auto s = sessions_.find(call.session); s != sessions_.end()) {
      Reply(s->second.routing_id, call.req, Status::NoLeader(RegistryProblem()));
    }
    return;
  }
  call.id = next_name_call_++;
  call.waiting_since = now;
  call.give_up = now + kNameCallTimeout;
  NameCall& stored = name_calls_.emplace(call.id, std::move(call)).first->second;
  RouteNameCall(stored, now);
}

void BrokerLoop::RouteNameCall(NameCall& call, TimePoint now) {
  std::string leader = KnownLeader(now);
  if (leader.empty()) {
    if (!call.sent_to.empty()) call.waiting_since = now;
    call.sent_to.clear();
    return;  // NamingTimers sends it when a leader is known, or gives up
  }
  call.sent_to = leader;
  if (leader == self_.node) {
    // May answer (and erase the call) at once: nothing after this touches it.
    TakeNameCall(self_, call.id, call.op, call.data);
    return;
  }
  if (SendToPeer(leader, wire::PeerNameCall{self_, call.id, call.op, call.data})) {
    ++counters_.name_calls_forwarded;
  } else {
    call.sent_to.clear();
    call.waiting_since = now;
  }
}

void BrokerLoop::FinishNameCall(uint64_t id, Status status, std::optional<MemberId> holder,
                                std::string metadata, std::vector<wire::Record> records) {
  auto it = name_calls_.find(id);
  if (it == name_calls_.end()) return;
  NameCall call = std::move(it->second);
  name_calls_.erase(it);
  if (status.code() == Code::kNoLeader) ++counters_.name_no_leader;
  if (call.session == 0) {
    // One of our releases. If it failed, the next sweep proposes it again
    // as long as the names are still held.
    Result<registry::Command> command = registry::DecodeCommand(call.data);
    if (command.ok()) {
      if (auto* m = std::get_if<registry::ReleaseMember>(&command.value())) {
        releasing_members_.erase(m->member);
      } else if (auto* n = std::get_if<registry::ReleaseNode>(&command.value())) {
        releasing_nodes_.erase({n->node, n->incarnation});
      } else if (auto* a = std::get_if<registry::ReadmitNode>(&command.value())) {
        readmitting_nodes_.erase({a->node, a->incarnation});
      }
    }
    if (!status.ok()) {
      log_.LogLimited(LogLevel::kInfo, "release",
                      "a release of names did not commit (" + status.ToString() +
                          "): it is proposed again while the names are held");
    }
    return;
  }
  auto s = sessions_.find(call.session);
  if (s == sessions_.end()) return;  // the caller left; its names are released anyway
  wire::ReplyBody body;
  if (holder) body = wire::NameInfo{call.name, *holder, std::move(metadata)};
  bool records_read = call.op == wire::NameCallOp::kConsistentRecords ||
                      call.op == wire::NameCallOp::kConsistentRecord;
  if (records_read && status.ok()) body = wire::RecordsBody{std::move(records)};
  Reply(s->second.routing_id, call.req, std::move(status), std::move(body));
}

// ---- the leader's side ------------------------------------------------------

void BrokerLoop::TakeNameCall(const wire::PeerId& from, uint64_t id, wire::NameCallOp op,
                              const std::string& data) {
  CallOrigin origin{from, id, 0, {}};
  if (!raft_ || raft_->role() != raft::Role::kLeader) {
    AnswerNameCall(origin, Status::NoLeader(self_.node + " is not the registry's leader"));
    return;
  }
  ++counters_.name_calls_served;
  if (op == wire::NameCallOp::kWrite) {
    Result<uint64_t> index = raft_->Propose(data);
    if (!index.ok()) {
      AnswerNameCall(origin, Status::NoLeader(index.status().message()));
      return;
    }
    origin.term = raft_->term();
    proposals_[index.value()] = std::move(origin);
    return;
  }
  uint64_t read = next_read_++;
  if (Status s = raft_->ReadIndex(read); !s.ok()) {
    AnswerNameCall(origin, Status::NoLeader(s.message()));
    return;
  }
  origin.op = op;
  origin.name = data;
  reads_[read] = std::move(origin);
}

void BrokerLoop::AnswerRead(const CallOrigin& origin) {
  if (origin.op == wire::NameCallOp::kConsistentRecords) {
    AnswerNameCall(origin, Status::Ok(), std::nullopt, {}, ToWire(registry_.Records(origin.name)));
    return;
  }
  if (origin.op == wire::NameCallOp::kConsistentRecord) {
    std::optional<std::string> value = registry_.Record(origin.name);
    if (!value) {
      AnswerNameCall(origin, Status::NotFound("no record '" + origin.name + "'"));
      return;
    }
    AnswerNameCall(origin, Status::Ok(), std::nullopt, {}, {{origin.name, std::move(*value)}});
    return;
  }
  std::optional<registry::Entry> e = registry_.Whereis(origin.name);
  if (e) {
    AnswerNameCall(origin, Status::Ok(), e->holder, e->metadata);
  } else {
    AnswerNameCall(origin, Status::NotRegistered("nobody holds '" + origin.name + "'"));
  }
}

void BrokerLoop::AnswerNameCall(const CallOrigin& origin, Status status,
                                std::optional<MemberId> holder, std::string metadata,
                                std::vector<wire::Record> records) {
  if (origin.from == self_) {
    OnNameAnswer(self_.node, origin.id, std::move(status), std::move(holder), std::move(metadata),
                 std::move(records), Clock::now());
    return;
  }
  // Only to the incarnation that asked: a restarted broker numbers its calls afresh.
  auto peer = peers_.find(origin.from.node);
  if (peer == peers_.end() || peer->second.id.incarnation != origin.from.incarnation) return;
  SendToPeer(origin.from.node,
             wire::PeerNameAnswer{self_, origin.id, std::move(status), std::move(holder),
                                  std::move(metadata), std::move(records)});
}

void BrokerLoop::OnPeerNameCall(const wire::PeerNameCall& call) {
  if (call.op == wire::NameCallOp::kWrite) {
    // A broker writes only for its own live members; releasing a whole node
    // is the leader's own decision.
    Result<registry::Command> command = registry::DecodeCommand(call.data);
    Status bad;
    if (!command.ok()) {
      bad = Status::BadMessage("not a registry command: " + command.status().message());
    } else {
      auto own = [&](const MemberId& m) {
        return m.node == call.from.node && m.incarnation == call.from.incarnation;
      };
      const registry::Command& c = command.value();
      bool allowed = false;
      if (auto* r = std::get_if<registry::Register>(&c)) allowed = own(r->holder);
      if (auto* u = std::get_if<registry::Unregister>(&c)) allowed = own(u->holder);
      if (auto* m = std::get_if<registry::ReleaseMember>(&c)) allowed = own(m->member);
      if (IsRecordCommand(c)) allowed = true;  // records belong to no member
      if (!allowed) bad = Status::InvalidArgument("a broker may write only for its own members");
    }
    if (!bad.ok()) {
      ++counters_.name_bad_calls;
      log_.LogLimited(LogLevel::kWarn, "name-call-" + call.from.node,
                      "refused a registry call from " + call.from.node + ": " + bad.message());
      AnswerNameCall(CallOrigin{call.from, call.id, 0, {}}, bad);
      return;
    }
  }
  TakeNameCall(call.from, call.id, call.op, call.data);
}

void BrokerLoop::OnNameAnswer(const std::string& from, uint64_t id, Status status,
                              std::optional<MemberId> holder, std::string metadata,
                              std::vector<wire::Record> records, TimePoint now) {
  auto it = name_calls_.find(id);
  if (it == name_calls_.end() || it->second.sent_to != from) {
    ++counters_.name_answers_stale;  // after a timeout, or a retry elsewhere
    return;
  }
  NameCall& call = it->second;
  // no_leader: not done. timeout: the leader lost its leadership with the
  // call uncommitted; it may yet commit, so only idempotent calls go again.
  bool again = status.code() == Code::kNoLeader ||
               (status.code() == Code::kTimeout && call.retry_if_leader_dies);
  if (!again) {
    FinishNameCall(id, std::move(status), std::move(holder), std::move(metadata),
                   std::move(records));
    return;
  }
  if (status.code() == Code::kTimeout) call.maybe_done = true;
  call.sent_to.clear();
  call.waiting_since = now;
  // Our own "no": the timers try again, rather than recursing here.
  if (from != self_.node) RouteNameCall(call, now);
}

// ---- consensus --------------------------------------------------------------

std::string BrokerLoop::KnownLeader(TimePoint now) const {
  if (!raft_) return "";
  if (raft_->role() == raft::Role::kLeader) return self_.node;
  const std::string& leader = raft_->leader();
  if (leader.empty() || !peers_.count(leader) || blocked_.count(leader) ||
      voter_conflicts_.count(leader)) {
    return "";
  }
  // A follower forgets its leader only when it campaigns, and a learner never
  // does: a leader not heard from for an election timeout is not relied on.
  if (now - leader_heard_ > options_.raft_tick * 20) return "";
  return leader;
}

void BrokerLoop::OnPeerRaft(const wire::PeerRaft& message, TimePoint now) {
  ++counters_.raft_messages_in;
  if (!raft_ || voter_conflicts_.count(message.from.node)) {
    ++counters_.raft_foreign_messages;
    return;
  }
  if (Status s = raft_->Step(message.message); !s.ok()) {
    ++counters_.raft_bad_messages;
    log_.LogLimited(LogLevel::kWarn, "raft-bad",
                    "dropped a registry message from " + message.from.node + ": " + s.message());
    return;
  }
  if (message.from.node == raft_->leader()) leader_heard_ = now;
}

void BrokerLoop::SendRaft(const raft::Message& m) {
  if (voter_conflicts_.count(m.to)) return;
  if (SendToPeer(m.to, wire::PeerRaft{self_, m})) ++counters_.raft_messages_out;
}

void BrokerLoop::HandleRaftReady(TimePoint now) {
  while (raft_ && raft_->HasReady()) {
    raft::Ready rd = raft_->TakeReady();
    if (raft_storage_) {
      if (Status s = raft_storage_->Save(rd); !s.ok()) {
        // Nothing may leave that promises what is not on disk: stop taking
        // part. Calls waiting on us run into their deadlines.
        raft_failure_ = "the registry's storage failed (" + s.message() +
                        "): this broker no longer takes part in the registry; restart it";
        log_.Log(LogLevel::kError, raft_failure_);
        raft_.reset();
        return;
      }
    }
    for (const raft::Message& m : rd.messages) SendRaft(m);
    if (rd.snapshot) RestoreRegistry(*rd.snapshot);
    for (const raft::Entry& e : rd.committed_entries) ApplyEntry(e);
    for (const raft::ReadState& r : rd.reads) {
      auto it = reads_.find(r.request_id);
      if (it == reads_.end()) continue;
      CallOrigin origin = std::move(it->second);
      reads_.erase(it);
      if (!r.ok) {
        AnswerNameCall(origin,
                       Status::NoLeader("leadership was lost before the read was confirmed"));
        continue;
      }
      AnswerRead(origin);
    }
  }
  if (!raft_) return;
  MaybeCompact();
  bool leading = raft_->role() == raft::Role::kLeader;
  if (leading && became_leader_ == TimePoint{}) {
    became_leader_ = now;
    log_.Log(LogLevel::kInfo, "registry: elected leader in term " + std::to_string(raft_->term()));
    next_release_sweep_ = now;  // names of nodes that died meanwhile
  } else if (!leading && became_leader_ != TimePoint{}) {
    became_leader_ = {};
    log_.Log(LogLevel::kInfo,
             "registry: no longer the leader (term " + std::to_string(raft_->term()) + ")");
    // What we proposed and did not see committed may still commit under the
    // next leader, or may not: say so now rather than at the callers' deadlines.
    std::map<uint64_t, CallOrigin> proposals = std::move(proposals_);
    proposals_.clear();
    for (const auto& [index, origin] : proposals) {
      AnswerNameCall(origin, Status::Timeout("the registry's leader lost its leadership before "
                                             "the call committed: it may or may not take effect"));
    }
  }
}

void BrokerLoop::ApplyEntry(const raft::Entry& entry) {
  std::optional<CallOrigin> origin;
  if (auto it = proposals_.find(entry.index); it != proposals_.end()) {
    origin = std::move(it->second);
    proposals_.erase(it);
    if (origin->term != entry.term) {
      // Another leader's entry took the index: ours never commits.
      AnswerNameCall(*origin, Status::NoLeader("leadership changed before the call committed; "
                                               "it did not take effect"));
      origin.reset();
    }
  }
  if (entry.data.empty()) return;  // a new leader's no-op
  Result<registry::Command> command = registry::DecodeCommand(entry.data);
  if (!command.ok()) {
    // Every broker skips it alike; it can only come from a bug.
    ++counters_.raft_bad_entries;
    log_.LogLimited(LogLevel::kError, "raft-entry",
                    "registry entry " + std::to_string(entry.index) +
                        " is not a command: " + command.status().message());
    if (origin) AnswerNameCall(*origin, Status::Internal("the entry did not decode"));
    return;
  }
  Result<registry::Outcome> outcome = registry_.Apply(command.value());
  if (!outcome.ok()) {
    if (origin) AnswerNameCall(*origin, outcome.status());
    return;
  }
  NotifyNameMonitors(outcome->changes);
  const registry::Command& c = command.value();
  if (auto* r = std::get_if<registry::Register>(&c);
      r && outcome->verdict == registry::Verdict::kOk && r->holder.node == self_.node &&
      r->holder.incarnation == self_.incarnation && !sessions_.count(r->holder.session)) {
    // Committed after its member's session ended (and after the release
    // that session end proposed): release it again.
    ReleaseNames(registry::ReleaseMember{r->holder}, Clock::now());
  }
  if (auto* n = std::get_if<registry::ReleaseNode>(&c);
      n && n->node == self_.node && n->incarnation >= self_.incarnation) {
    log_.Log(LogLevel::kWarn,
             "registry: the leader declared this broker dead and released its members' names; "
             "they can register again once the leader hears from this broker");
  }
  if (!origin) return;
  std::string name = NameOf(c);
  std::optional<MemberId> holder = outcome->holder;
  std::string metadata;
  if (holder) {
    if (std::optional<registry::Entry> e = registry_.Whereis(name)) metadata = e->metadata;
  }
  AnswerNameCall(*origin, VerdictStatus(*outcome, name), std::move(holder), std::move(metadata));
}

void BrokerLoop::RestoreRegistry(const raft::Snapshot& snapshot) {
  std::vector<registry::Entry> before = registry_.Names();
  if (Status s = registry_.Restore(snapshot.data); !s.ok()) {
    ++counters_.raft_bad_entries;
    log_.Log(LogLevel::kError, "registry: the leader's snapshot at " +
                                   std::to_string(snapshot.index) +
                                   " does not restore: " + s.message());
    return;
  }
  ++counters_.raft_snapshots_installed;
  if (!name_monitors_.empty()) {
    std::vector<registry::Entry> after = registry_.Names();
    std::vector<registry::Change> changes;
    auto b = before.begin(), a = after.begin();
    while (b != before.end() || a != after.end()) {
      if (a == after.end() || (b != before.end() && b->name < a->name)) {
        changes.push_back({registry::ChangeKind::kUnregistered, b->name, b->holder, b->metadata});
        ++b;
      } else if (b == before.end() || a->name < b->name) {
        changes.push_back({registry::ChangeKind::kRegistered, a->name, a->holder, a->metadata});
        ++a;
      } else {
        if (!(*a == *b)) {
          if (a->holder != b->holder) {
            changes.push_back(
                {registry::ChangeKind::kUnregistered, b->name, b->holder, b->metadata});
          }
          changes.push_back({registry::ChangeKind::kRegistered, a->name, a->holder, a->metadata});
        }
        ++a;
        ++b;
      }
    }
    NotifyNameMonitors(changes);
  }
  // Calls proposed here that the snapshot covers: whether they made it is
  // not known here.
  for (auto it = proposals_.begin(); it != proposals_.end() && it->first <= snapshot.index;) {
    AnswerNameCall(it->second, Status::Unavailable("this broker caught up from a snapshot: the "
                                                   "call may or may not have taken effect"));
    it = proposals_.erase(it);
  }
}

void BrokerLoop::NotifyNameMonitors(const std::vector<registry::Change>& changes) {
  if (name_monitors_.empty() || changes.empty()) return;
  for (const auto& [ref, monitor] : name_monitors_) {
    auto s = sessions_.find(monitor.session);
    if (s == sessions_.end()) continue;
    for (const registry::Change& c : changes) {
      if (c.name.compare(0, monitor.prefix.size(), monitor.prefix) != 0) continue;
      Deliver(s->second, wire::NameEvent{ref,
                                         c.kind == registry::ChangeKind::kRegistered
                                             ? wire::NameEventKind::kRegistered
                                             : wire::NameEventKind::kUnregistered,
                                         {c.name, c.holder, c.metadata}});
    }
  }
}

void BrokerLoop::MaybeCompact() {
  uint64_t applied = raft_->applied_index();
  if (applied < raft_->snapshot().index + options_.raft_snapshot_entries) return;
  if (Status s = raft_->Compact(applied, registry_.Snapshot()); !s.ok()) {
    log_.LogLimited(LogLevel::kWarn, "compact", "registry: compaction failed: " + s.message());
    return;
  }
  if (raft_storage_) {
    if (Status s = raft_storage_->SaveSnapshot(raft_->snapshot()); !s.ok()) {
      raft_failure_ = "the registry's storage failed (" + s.message() +
                      "): this broker no longer takes part in the registry; restart it";
      log_.Log(LogLevel::kError, raft_failure_);
      raft_.reset();
      return;
    }
  }
  ++counters_.raft_snapshots_taken;
}

// ---- membership -------------------------------------------------------------

// A voter that kept the registry in memory restarted: the registry restarts
// empty, and our copy of its log would never match its new one.
void BrokerLoop::RestartRegistryCopy(const std::string& voter) {
  if (raft_storage_) {
    log_.Log(LogLevel::kWarn, "registry: " + voter +
                                  " kept the registry in memory and restarted: it starts empty; "
                                  "this broker's --data-dir " +
                                  options_.data_dir +
                                  " holds the old one: restart this broker with it emptied");
    return;
  }
  log_.Log(LogLevel::kInfo, "registry: " + voter +
                                " kept the registry in memory and restarted: it starts empty, and "
                                "so does this broker's copy");
  std::vector<registry::Entry> names = registry_.Names();
  std::vector<registry::Change> changes;
  for (registry::Entry& e : names) {
    changes.push_back(
        {registry::ChangeKind::kUnregistered, std::move(e.name), e.holder, std::move(e.metadata)});
  }
  registry_ = registry::Registry();
  raft_.reset();
  recovered_ = {};
  leader_heard_ = {};
  if (Status s = CreateRaft(); !s.ok()) {
    raft_failure_ = s.message();
    log_.Log(LogLevel::kError, raft_failure_);
  }
  NotifyNameMonitors(changes);
}

uint64_t BrokerLoop::RegistryEpoch() const {
  bool votes = std::binary_search(voters_.begin(), voters_.end(), self_.node);
  return votes && !raft_storage_ ? self_.incarnation : 0;
}

void BrokerLoop::OnPeerVoters(const std::string& node, const std::vector<std::string>& voters,
                              uint64_t epoch) {
  if (epoch != 0) {
    auto [it, first] = voter_epochs_.try_emplace(node, epoch);
    if (!first && it->second != epoch) {
      it->second = epoch;
      if (voters == voters_ && !std::binary_search(voters_.begin(), voters_.end(), self_.node)) {
        RestartRegistryCopy(node);
      }
    }
  }
  if (voters.empty()) {
    voter_conflicts_.erase(node);  // it has not learnt them yet
  } else if (voters_.empty()) {
    voters_ = voters;
    log_.Log(LogLevel::kInfo, "registry: voters learnt from " + node);
    if (Status s = CreateRaft(); !s.ok()) {
      raft_failure_ = s.message();
      log_.Log(LogLevel::kError, raft_failure_);
    }
  } else if (voters != voters_) {
    auto it = voter_conflicts_.find(node);
    if (it == voter_conflicts_.end() || it->second != voters) {
      log_.Log(LogLevel::kWarn, "registry: " + node + " has the voters " + JoinNames(voters) +
                                    ", this broker " + JoinNames(voters_) +
                                    ": neither takes part in the other's registry (give every "
                                    "broker the same --voters)");
    }
    voter_conflicts_[node] = voters;
  } else {
    voter_conflicts_.erase(node);
  }
  if (!raft_) return;
  bool voter = std::binary_search(voters_.begin(), voters_.end(), node);
  if (voter_conflicts_.count(node)) {
    if (raft_->learners().count(node)) raft_->RemoveLearner(node);
  } else if (!voter) {
    raft_->AddLearner(node);  // so that a leader replicates to it
  }
}

void BrokerLoop::OnPeerGoneNaming(const std::string& node, TimePoint now) {
  voter_conflicts_.erase(node);
  if (raft_ && raft_->learners().count(node)) raft_->RemoveLearner(node);
  std::vector<uint64_t> lost;
  for (auto& [id, call] : name_calls_) {
    if (call.sent_to == node) lost.push_back(id);
  }
  for (uint64_t id : lost) {
    NameCall& call = name_calls_.at(id);
    if (call.retry_if_leader_dies) {
      // Idempotent: on the next leader it answers as if this one had not been.
      call.maybe_done = true;
      call.sent_to.clear();
      call.waiting_since = now;
      RouteNameCall(call, now);
    } else {
      ++counters_.name_timeouts;
      FinishNameCall(id, Status::Unavailable("the registry's leader " + node +
                                             " died before answering: the call may or may not "
                                             "have taken effect"));
    }
  }
  next_release_sweep_ = now;
}

void BrokerLoop::OnSessionGoneNaming(Session& session) {
  for (uint64_t ref : session.name_monitors) name_monitors_.erase(ref);
  if (session.registered) {
    ReleaseNames(registry::ReleaseMember{{self_.node, self_.incarnation, session.id}},
                 Clock::now());
  }
}

void BrokerLoop::ReleaseNames(registry::Command command, TimePoint now) {
  if (!raft_) return;  // the sweep proposes it once there is a registry
  if (auto* m = std::get_if<registry::ReleaseMember>(&command)) {
    if (!releasing_members_.insert(m->member).second) return;
  } else if (auto* n = std::get_if<registry::ReleaseNode>(&command)) {
    if (!releasing_nodes_.insert({n->node, n->incarnation}).second) return;
  } else if (auto* a = std::get_if<registry::ReadmitNode>(&command)) {
    if (!readmitting_nodes_.insert({a->node, a->incarnation}).second) return;
  }
  ++counters_.name_releases;
  NameCall call;
  call.data = registry::EncodeCommand(command);
  StartNameCall(std::move(call), now);
}

// Releases what the registry still holds for members that are gone: our own
// ended sessions (a release that did not commit, or a registration that
// committed after it), and, on the leader, the members of nodes that died,
// restarted, or have not been seen since it leads. The leader also readmits
// live nodes that were released (declared dead across a partition that has
// healed), so that their members can register again.
void BrokerLoop::SweepReleases(TimePoint now) {
  if (!raft_) return;
  bool leading = raft_->role() == raft::Role::kLeader;
  if (leading) {
    auto readmit = [&](const wire::PeerId& id) {
      std::optional<uint64_t> released = registry_.ReleasedIncarnation(id.node);
      if (released && *released >= id.incarnation) {
        log_.Log(LogLevel::kInfo,
                 "registry: " + id.node + " was released as dead but is alive: readmitting it");
        ReleaseNames(registry::ReadmitNode{id.node, id.incarnation}, now);
      }
    };
    readmit(self_);
    for (const auto& [node, peer] : peers_) readmit(peer.id);
  }
  for (const MemberId& h : registry_.Holders()) {
    if (h.node == self_.node) {
      if (h.incarnation == self_.incarnation) {
        if (!sessions_.count(h.session)) ReleaseNames(registry::ReleaseMember{h}, now);
      } else if (leading && h.incarnation < self_.incarnation) {
        ReleaseNames(registry::ReleaseNode{h.node, h.incarnation}, now);
      }
      continue;
    }
    if (!leading) continue;
    if (auto peer = peers_.find(h.node); peer != peers_.end()) {
      if (peer->second.id.incarnation > h.incarnation) {
        ReleaseNames(registry::ReleaseNode{h.node, h.incarnation}, now);
      }
      continue;
    }
    if (auto dead = dead_.find(h.node); dead != dead_.end()) {
      ReleaseNames(registry::ReleaseNode{h.node, std::max(h.incarnation, dead->second.incarnation)},
                   now);
      continue;
    }
    if (now - became_leader_ > kUnseenHolderGrace && now - started_ > kUnseenHolderGrace) {
      ReleaseNames(registry::ReleaseNode{h.node, h.incarnation}, now);
    }
  }
}

void BrokerLoop::NamingTimers(TimePoint now) {
  if (raft_ && now >= next_raft_tick_) {
    raft_->Tick();
    next_raft_tick_ = now + options_.raft_tick;
  }
  if (now >= next_release_sweep_) {
    next_release_sweep_ = now + kReleaseSweep;
    SweepReleases(now);
  }
  for (auto it = status_calls_.begin(); it != status_calls_.end();) {
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    // The leader did not answer: this broker's own view, without progress.
    if (auto s = sessions_.find(it->second.session); s != sessions_.end()) {
      Reply(s->second.routing_id, it->second.req, Status::Ok(), LeaderStatus());
    }
    it = status_calls_.erase(it);
  }
  if (name_calls_.empty()) return;
  std::string leader = KnownLeader(now);
  std::vector<uint64_t> route, no_leader, unknown;
  for (const auto& [id, call] : name_calls_) {
    if (call.sent_to.empty()) {
      if (now >= call.give_up || now - call.waiting_since >= kLeaderWait) {
        (call.maybe_done ? unknown : no_leader).push_back(id);
      } else if (!leader.empty()) {
        route.push_back(id);
      }
    } else if (now >= call.give_up) {
      unknown.push_back(id);
    }
  }
  for (uint64_t id : route) {
    if (auto it = name_calls_.find(id); it != name_calls_.end()) RouteNameCall(it->second, now);
  }
  for (uint64_t id : no_leader) {
    FinishNameCall(id, Status::NoLeader(RegistryProblem().empty()
                                            ? "no registry leader reachable within " +
                                                  std::to_string(kLeaderWait.count()) +
                                                  " ms (a minority partition, or an election)"
                                            : RegistryProblem()));
  }
  for (uint64_t id : unknown) {
    auto it = name_calls_.find(id);
    if (it == name_calls_.end()) continue;
    ++counters_.name_timeouts;
    std::string why =
        it->second.sent_to.empty()
            ? "the leader that had the call died or lost its leadership, and no other leader "
              "answered in time"
            : "no answer from the leader " + it->second.sent_to + " within " +
                  std::to_string(kNameCallTimeout.count()) + " ms";
    FinishNameCall(id, Status::Timeout(why + ": the call may or may not have taken effect"));
  }
}

void BrokerLoop::OnRegistryStatus(const wire::PeerRegistryStatus& status) {
  if (!status.is_reply) {
    SendToPeer(status.from.node,
               wire::PeerRegistryStatus{self_, status.id, true, LeaderStatus().members});
    return;
  }
  auto it = status_calls_.find(status.id);
  if (it == status_calls_.end() || it->second.leader != status.from.node) return;
  StatusCall call = it->second;
  status_calls_.erase(it);
  auto s = sessions_.find(call.session);
  if (s == sessions_.end()) return;
  wire::LeaderBody body = LeaderStatus();
  body.members = status.members;  // the leader's view, with match indexes
  Reply(s->second.routing_id, call.req, Status::Ok(), std::move(body));
}

wire::LeaderBody BrokerLoop::LeaderStatus() const {
  wire::LeaderBody b;
  b.node = self_.node;
  b.problem = RegistryProblem();
  if (b.problem.size() > 2000) b.problem.resize(2000);  // many conflicting peers
  if (!raft_) {
    b.role = "none";
    for (const std::string& v : voters_) {
      b.members.push_back({v, true, v == self_.node || peers_.count(v) > 0, 0, "", false});
    }
    return b;
  }
  b.leader = raft_->role() == raft::Role::kLeader ? self_.node : raft_->leader();
  b.role = std::string(raft::RoleName(raft_->role()));
  b.term = raft_->term();
  b.commit = raft_->commit_index();
  b.applied = raft_->applied_index();
  std::vector<raft::PeerProgress> progress = raft_->Progress();
  auto add = [&](const std::string& node, bool voter) {
    wire::RaftMemberInfo m{node, voter, node == self_.node || peers_.count(node) > 0, 0, "", false};
    if (raft_->role() == raft::Role::kLeader) {
      if (node == self_.node) {
        m.match = raft_->last_index();
        m.active = true;
      }
      for (const raft::PeerProgress& p : progress) {
        if (p.id != node) continue;
        m.match = p.match;
        m.replication = std::string(raft::ReplicationStateName(p.state));
        m.active = p.recent_active;
      }
    }
    b.members.push_back(std::move(m));
  };
  for (const std::string& v : voters_) add(v, true);
  for (const std::string& l : raft_->learners()) add(l, false);
  return b;
}

}  // namespace meshbus
