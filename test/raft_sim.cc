#include "test/raft_sim.h"

#include <algorithm>
#include <cstring>

namespace meshbus::raft::sim {
namespace {

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t Mix(uint64_t h, uint64_t v) {
  return SplitMix(h ^ SplitMix(v));
}

uint64_t HashData(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t PrefixAfter(uint64_t prefix, const Entry& e) {
  return Mix(Mix(prefix, e.term), HashData(e.data));
}

// The simulated state machine's snapshot: how far it applied, a hash of its
// state, and the hash of the log up to there (so a receiver can go on
// checking log matching).
struct SnapshotData {
  uint64_t index = 0;
  uint64_t state = 0;
  uint64_t prefix = 0;
};

std::string EncodeSnapshot(const SnapshotData& d) {
  std::string out(sizeof(d), '\0');
  std::memcpy(out.data(), &d, sizeof(d));
  return out;
}

bool DecodeSnapshot(const std::string& data, SnapshotData* d) {
  if (data.size() != sizeof(*d)) return false;
  std::memcpy(d, data.data(), sizeof(*d));
  return true;
}

}  // namespace

Simulator::Simulator(Options options)
    : options_(std::move(options)), rng_state_(SplitMix(options_.seed)) {
  for (int i = 1; i <= options_.voters; ++i) voters_.push_back("n" + std::to_string(i));
  for (int i = 1; i <= options_.learners; ++i) learners_.push_back("l" + std::to_string(i));
  nodes_.resize(voters_.size() + learners_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    nodes_[i].id = i < voters_.size() ? voters_[i] : learners_[i - voters_.size()];
  }
  cut_.assign(nodes_.size() * nodes_.size(), false);
  for (size_t i = 0; i < nodes_.size(); ++i) Start(i);
}

// ---- Randomness ----

uint64_t Simulator::Random() {
  rng_state_ += 0x9e3779b97f4a7c15ull;
  return SplitMix(rng_state_);
}

bool Simulator::Chance(double p) {
  return static_cast<double>(Random() >> 11) * 0x1.0p-53 < p;
}

// ---- Nodes ----

Config Simulator::NodeConfig(size_t i) const {
  Config c = options_.raft;
  c.self = nodes_[i].id;
  c.voters = voters_;
  c.seed = options_.seed * 7919 + i;
  return c;
}

void Simulator::Start(size_t i) {
  Node& n = nodes_[i];
  Result<Raft> raft = Raft::Create(NodeConfig(i), n.disk);
  if (!raft.ok()) return Fail(n.id + " cannot restart: " + raft.status().ToString());
  n.raft.emplace(std::move(raft).value());
  for (const std::string& l : learners_) {
    if (l == n.id) continue;
    if (Status s = n.raft->AddLearner(l); !s.ok()) return Fail(s.ToString());
  }
  // The state machine comes back from the snapshot; the entries after it are
  // applied again from the first Ready.
  SnapshotData d;
  if (n.disk.snapshot.index != 0 && !DecodeSnapshot(n.disk.snapshot.data, &d)) {
    return Fail(n.id + ": stored snapshot does not decode");
  }
  n.applied = d.index;
  n.state = d.state;
  ProcessReady(i);
}

void Simulator::Crash(size_t i) {
  Node& n = nodes_[i];
  n.raft.reset();
  n.paused_steps = 0;
  n.doomed_steps = 0;
  n.down_steps = 1 + static_cast<int>(Uniform(static_cast<uint64_t>(options_.max_down_steps)));
  std::erase_if(reads_, [i](const auto& kv) { return kv.second.node == i; });
  ++stats_.crashes;
}

size_t Simulator::IndexOf(const std::string& id) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].id == id) return i;
  }
  return nodes_.size();
}

const Raft* Simulator::node(const std::string& id) const {
  size_t i = IndexOf(id);
  return i < nodes_.size() && nodes_[i].raft ? &*nodes_[i].raft : nullptr;
}

std::vector<std::string> Simulator::Leaders() const {
  std::vector<std::string> out;
  for (const Node& n : nodes_) {
    if (n.raft && n.raft->role() == Role::kLeader) out.push_back(n.id);
  }
  return out;
}

std::string Simulator::Describe() const {
  std::string out;
  for (const Node& n : nodes_) {
    out += "\n  " + n.id + ": ";
    if (!n.raft) {
      out += "down";
      continue;
    }
    const Raft& r = *n.raft;
    out += std::string(RoleName(r.role())) + " term " + std::to_string(r.term()) + " commit " +
           std::to_string(r.commit_index()) + " applied " + std::to_string(n.applied) + " last " +
           std::to_string(r.last_index()) + " leader '" + r.leader() + "'";
    for (const PeerProgress& p : r.Progress()) {
      out += "\n    " + p.id + ": " + std::string(ReplicationStateName(p.state)) + " match " +
             std::to_string(p.match) + " next " + std::to_string(p.next) +
             (p.recent_active ? " active" : " inactive");
    }
  }
  return out;
}

// ---- Steps ----

Status Simulator::Run(int steps) {
  for (int i = 0; i < steps && !failed(); ++i) Step();
  return failure_;
}

Status Simulator::Step() {
  if (failed()) return failure_;
  ++now_;
  RandomEvents();
  TickAll();
  Deliver();
  ++stats_.steps;
  stats_.leaders = leader_of_term_.size();
  stats_.committed = committed_.size();
  return failure_;
}

void Simulator::StopFaults() {
  options_.loss = options_.duplicate = options_.long_delay = 0;
  options_.partition_change = options_.crash = options_.crash_leader = options_.skip_tick = 0;
  options_.crash_new_leader = 0;
  for (Node& n : nodes_) n.doomed_steps = 0;
  options_.pause = 0;
  options_.propose = options_.read = options_.compact = 0;
}

void Simulator::HealNetwork() {
  std::fill(cut_.begin(), cut_.end(), false);
}

void Simulator::Isolate(const std::vector<std::string>& group) {
  std::vector<bool> inside(nodes_.size(), false);
  for (const std::string& id : group) inside[IndexOf(id)] = true;
  for (size_t a = 0; a < nodes_.size(); ++a) {
    for (size_t b = 0; b < nodes_.size(); ++b) {
      if (inside[a] != inside[b]) cut_[a * nodes_.size() + b] = true;
    }
  }
}

void Simulator::RandomEvents() {
  if (Chance(options_.partition_change)) ChangePartition();
  RandomCrashes();
  if (Chance(options_.propose)) RandomProposal();
  if (Chance(options_.read)) RandomRead();
  if (Chance(options_.compact)) RandomCompaction();
}

void Simulator::RandomCrashes() {
  for (size_t i = 0; i < nodes_.size() && !failed(); ++i) {
    Node& n = nodes_[i];
    if (!n.raft) {
      if (--n.down_steps <= 0) Start(i);
    } else if (n.paused_steps > 0) {
      --n.paused_steps;
    } else if (Chance(options_.crash) || (n.doomed_steps > 0 && --n.doomed_steps == 0)) {
      Crash(i);
    } else if (Chance(options_.pause)) {
      n.paused_steps =
          1 + static_cast<int>(Uniform(static_cast<uint64_t>(options_.max_pause_steps)));
      ++stats_.pauses;
    }
  }
  // Bad luck strikes leaders: it leaves terms whose entries only one node has.
  std::vector<std::string> leaders = Leaders();
  if (!leaders.empty() && Chance(options_.crash_leader))
    Crash(IndexOf(leaders[Uniform(leaders.size())]));
}

void Simulator::ChangePartition() {
  ++stats_.partitions;
  size_t n = nodes_.size();
  switch (Uniform(5)) {
    case 0:
    case 1:
      HealNetwork();
      break;
    case 2: {  // a random split in two
      HealNetwork();
      std::vector<std::string> group;
      for (const Node& node : nodes_) {
        if (Chance(0.5)) group.push_back(node.id);
      }
      Isolate(group);
      break;
    }
    case 3: {  // one node alone, often the leader
      HealNetwork();
      std::vector<std::string> leaders = Leaders();
      bool leader = !leaders.empty() && Chance(0.5);
      Isolate({leader ? leaders[Uniform(leaders.size())] : nodes_[Uniform(n)].id});
      break;
    }
    default: {  // one more link cut one way
      size_t a = Uniform(n);
      size_t b = Uniform(n);
      if (a != b) cut_[a * n + b] = true;
      break;
    }
  }
}

// A node that believes it leads, most of the time (stale leaders included).
size_t Simulator::PickTarget() {
  std::vector<size_t> leaders;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].raft && nodes_[i].raft->role() == Role::kLeader) leaders.push_back(i);
  }
  if (!leaders.empty() && Chance(0.8)) return leaders[Uniform(leaders.size())];
  return Uniform(nodes_.size());
}

void Simulator::RandomProposal() {
  size_t i = PickTarget();
  if (!nodes_[i].raft || nodes_[i].paused_steps > 0) return;
  Propose(nodes_[i].id, "w" + std::to_string(next_data_++));
}

Result<uint64_t> Simulator::Propose(const std::string& id, std::string data) {
  size_t i = IndexOf(id);
  if (i == nodes_.size() || !nodes_[i].raft) return Status::Unavailable(id + " is down");
  Result<uint64_t> index = nodes_[i].raft->Propose(std::move(data));
  if (index.ok()) ++stats_.proposals;
  ProcessReady(i);
  return index;
}

void Simulator::RandomRead() {
  size_t i = PickTarget();
  Node& n = nodes_[i];
  if (!n.raft || n.paused_steps > 0) return;
  uint64_t id = next_read_++;
  if (!n.raft->ReadIndex(id).ok()) return;
  reads_[id] = ReadCheck{i, max_commit_};
  ProcessReady(i);
}

void Simulator::RandomCompaction() {
  size_t i = Uniform(nodes_.size());
  Node& n = nodes_[i];
  if (!n.raft || n.paused_steps > 0 || n.applied < n.raft->snapshot().index + 10) return;
  SnapshotData d{n.applied, n.state, DiskPrefixAt(n, n.applied)};
  if (Status s = n.raft->Compact(n.applied, EncodeSnapshot(d)); !s.ok()) {
    return Fail(n.id + ": compaction refused: " + s.ToString());
  }
  CompactDisk(n, n.raft->snapshot());
  ++stats_.compactions;
}

void Simulator::TickAll() {
  std::vector<size_t> order(nodes_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[Uniform(i)]);
  for (size_t i : order) {
    if (failed()) return;
    const Node& n = nodes_[i];
    if (!n.raft || n.paused_steps > 0 || Chance(options_.skip_tick)) continue;
    nodes_[i].raft->Tick();
    ProcessReady(i);
  }
}

void Simulator::Deliver() {
  auto later = std::partition(network_.begin(), network_.end(),
                              [this](const InFlight& f) { return f.deliver_at <= now_; });
  std::vector<InFlight> due(std::make_move_iterator(network_.begin()),
                            std::make_move_iterator(later));
  network_.erase(network_.begin(), later);
  for (size_t i = due.size(); i > 1; --i) std::swap(due[i - 1], due[Uniform(i)]);
  for (InFlight& f : due) {
    if (failed()) return;
    Node& to = nodes_[f.to];
    if (to.raft && to.paused_steps > 0) {  // waits in the socket buffer
      f.deliver_at = now_ + 1;
      network_.push_back(std::move(f));
      continue;
    }
    if (!to.raft || Cut(f.from, f.to)) {
      ++stats_.dropped;
      continue;
    }
    ++stats_.delivered;
    if (Status s = to.raft->Step(f.message); !s.ok()) {
      return Fail(to.id + " rejected a message from a correct node: " + s.ToString());
    }
    ProcessReady(f.to);
  }
}

void Simulator::Send(size_t from, Message m) {
  size_t to = IndexOf(m.to);
  if (to == nodes_.size()) return Fail(nodes_[from].id + " sent to unknown '" + m.to + "'");
  if (Chance(options_.loss)) {
    ++stats_.dropped;
    return;
  }
  int copies = Chance(options_.duplicate) ? 2 : 1;
  for (int c = 0; c < copies; ++c) {
    bool slow = Chance(options_.long_delay);
    int max_delay = slow ? options_.long_delay_max : options_.max_delay;
    uint64_t delay = 1 + Uniform(static_cast<uint64_t>(max_delay));
    network_.push_back(InFlight{now_ + delay, from, to, c + 1 < copies ? m : std::move(m)});
  }
}

// ---- Ready ----

void Simulator::ProcessReady(size_t i) {
  Node& n = nodes_[i];
  if (failed() || !n.raft->HasReady()) return;
  Ready rd = n.raft->TakeReady();
  Persist(n, rd);  // durable before anything leaves
  for (Message& m : rd.messages) Send(i, std::move(m));
  if (rd.snapshot && !failed()) ApplySnapshot(n, *rd.snapshot);
  for (size_t k = 0; k < rd.committed_entries.size() && !failed(); ++k) {
    Apply(n, rd.committed_entries[k]);
  }
  for (size_t k = 0; k < rd.reads.size() && !failed(); ++k) ReleaseRead(i, rd.reads[k]);
  max_commit_ = std::max(max_commit_, n.raft->commit_index());
  CheckLeader(i);
}

void Simulator::Persist(Node& n, const Ready& rd) {
  if (rd.snapshot) PersistSnapshot(n, *rd.snapshot);
  if (!rd.entries.empty() && !failed()) PersistEntries(n, rd.entries);
  if (rd.hard_state && !failed()) PersistHardState(n, *rd.hard_state);
}

// As RaftStorage::SaveSnapshot: the log after the snapshot's entry survives
// only if the log holds that entry.
void Simulator::CompactDisk(Node& n, const Snapshot& s) {
  SnapshotData d;
  if (!DecodeSnapshot(s.data, &d) || d.index != s.index) {
    return Fail(n.id + ": snapshot at " + std::to_string(s.index) + " does not decode");
  }
  DurableState& disk = n.disk;
  uint64_t first = disk.snapshot.index + 1;
  uint64_t last = disk.snapshot.index + disk.entries.size();
  bool has_it = s.index >= first && s.index <= last && disk.entries[s.index - first].term == s.term;
  size_t drop = has_it ? s.index - disk.snapshot.index : disk.entries.size();
  disk.entries.erase(disk.entries.begin(), disk.entries.begin() + static_cast<ptrdiff_t>(drop));
  n.disk_prefix.erase(n.disk_prefix.begin(), n.disk_prefix.begin() + static_cast<ptrdiff_t>(drop));
  disk.snapshot = s;
  n.disk_base_prefix = d.prefix;
}

void Simulator::PersistSnapshot(Node& n, const Snapshot& s) {
  if (s.index <= n.disk.snapshot.index) {
    return Fail(n.id + ": snapshot at " + std::to_string(s.index) + " goes back");
  }
  if (s.index > committed_.size()) {
    return Fail(n.id + ": installs a snapshot of uncommitted entry " + std::to_string(s.index));
  }
  CompactDisk(n, s);
  ++stats_.snapshots_installed;
}

void Simulator::PersistEntries(Node& n, const std::vector<Entry>& entries) {
  DurableState& disk = n.disk;
  uint64_t first = entries.front().index;
  uint64_t last = disk.snapshot.index + disk.entries.size();
  if (first <= disk.snapshot.index || first > last + 1) {
    return Fail(n.id + ": Ready entries from " + std::to_string(first) + " do not follow " +
                std::to_string(last));
  }
  if (first <= last && first <= disk.hard_state.commit) {
    return Fail(n.id + ": overwrites committed entry " + std::to_string(first));
  }
  size_t keep = first - disk.snapshot.index - 1;
  disk.entries.resize(keep);
  n.disk_prefix.resize(keep);
  uint64_t prefix = keep == 0 ? n.disk_base_prefix : n.disk_prefix.back();
  for (const Entry& e : entries) {
    prefix = PrefixAfter(prefix, e);
    auto [it, fresh] = prefix_of_.emplace(std::make_pair(e.index, e.term), prefix);
    if (!fresh && it->second != prefix) {
      return Fail("log matching: " + n.id + " holds entry " + std::to_string(e.index) +
                  " of term " + std::to_string(e.term) + " after a different history");
    }
    disk.entries.push_back(e);
    n.disk_prefix.push_back(prefix);
  }
}

void Simulator::PersistHardState(Node& n, const HardState& hs) {
  const HardState& old = n.disk.hard_state;
  if (hs.term < old.term) return Fail(n.id + ": term goes back");
  if (hs.term == old.term && !old.voted_for.empty() && hs.voted_for != old.voted_for) {
    return Fail(n.id + ": votes twice in term " + std::to_string(hs.term));
  }
  if (hs.commit < old.commit) return Fail(n.id + ": commit goes back");
  if (hs.commit > n.disk.snapshot.index + n.disk.entries.size()) {
    return Fail(n.id + ": commit beyond the persisted log");
  }
  n.disk.hard_state = hs;
}

uint64_t Simulator::DiskPrefixAt(const Node& n, uint64_t index) const {
  if (index == n.disk.snapshot.index) return n.disk_base_prefix;
  return n.disk_prefix[index - n.disk.snapshot.index - 1];
}

void Simulator::ApplySnapshot(Node& n, const Snapshot& s) {
  SnapshotData d;
  DecodeSnapshot(s.data, &d);
  if (d.index <= n.applied) return Fail(n.id + ": a snapshot takes the state machine back");
  const CommittedEntry& c = committed_[d.index - 1];
  if (c.state != d.state || c.prefix != d.prefix) {
    return Fail(n.id + ": snapshot at " + std::to_string(d.index) + " differs from what was " +
                "committed");
  }
  n.applied = d.index;
  n.state = d.state;
}

void Simulator::Apply(Node& n, const Entry& e) {
  if (e.index != n.applied + 1) {
    return Fail(n.id + ": applies " + std::to_string(e.index) + " after " +
                std::to_string(n.applied));
  }
  uint64_t first = n.disk.snapshot.index + 1;
  if (e.index < first || e.index >= first + n.disk.entries.size() ||
      !(n.disk.entries[e.index - first] == e)) {
    return Fail(n.id + ": applies entry " + std::to_string(e.index) + " it has not persisted");
  }
  CommittedEntry c{e.term, HashData(e.data), n.disk_prefix[e.index - first],
                   Mix(n.state, HashData(e.data))};
  if (e.index <= committed_.size()) {
    const CommittedEntry& was = committed_[e.index - 1];
    if (was.term != c.term || was.data != c.data || was.prefix != c.prefix ||
        was.state != c.state) {
      return Fail("state machine safety: " + n.id + " applies a different entry at " +
                  std::to_string(e.index));
    }
  } else {
    committed_.push_back(c);
    committed_data_.insert(c.data);
  }
  n.applied = e.index;
  n.state = c.state;
}

void Simulator::ReleaseRead(size_t i, const ReadState& r) {
  Node& n = nodes_[i];
  auto it = reads_.find(r.request_id);
  if (it == reads_.end() || it->second.node != i) {
    return Fail(n.id + ": releases read " + std::to_string(r.request_id) + " it was not given");
  }
  ReadCheck check = it->second;
  reads_.erase(it);
  if (!r.ok) {
    ++stats_.reads_failed;
    return;
  }
  if (r.index < check.required || n.applied < r.index) {
    return Fail("stale read: " + n.id + " served read " + std::to_string(r.request_id) +
                " at index " + std::to_string(r.index) + " (applied " + std::to_string(n.applied) +
                "), but " + std::to_string(check.required) + " was committed before it was asked");
  }
  ++stats_.reads_ok;
  reads_ok_.insert(r.request_id);
}

// Election safety, and leader completeness: a leader of term T holds every
// entry committed in an earlier term. Also records what this leader commits.
void Simulator::CheckLeader(size_t i) {
  Node& n = nodes_[i];
  const Raft& r = *n.raft;
  if (failed() || r.role() != Role::kLeader) return;
  auto [it, fresh] = leader_of_term_.emplace(r.term(), n.id);
  if (!fresh && it->second != n.id) {
    return Fail("election safety: " + it->second + " and " + n.id + " both lead term " +
                std::to_string(r.term()));
  }
  // A leader that dies young leaves entries of its term on few nodes, the
  // ground of Figure 8.
  if (fresh && Chance(options_.crash_new_leader)) n.doomed_steps = 1 + static_cast<int>(Uniform(4));
  // commit_term_ never decreases along the log: what came before term T is a prefix.
  uint64_t before = static_cast<uint64_t>(
      std::lower_bound(commit_term_.begin(), commit_term_.end(), r.term()) - commit_term_.begin());
  uint64_t at = std::max(before, n.disk.snapshot.index);
  if (at > 0) {
    uint64_t last = n.disk.snapshot.index + n.disk.entries.size();
    if (at > last || at > committed_.size() || DiskPrefixAt(n, at) != committed_[at - 1].prefix) {
      return Fail("leader completeness: " + n.id + " leads term " + std::to_string(r.term()) +
                  " without the entries committed up to " + std::to_string(before));
    }
  }
  // Each index keeps the lowest term of a leader seen to commit it, which
  // keeps commit_term_ sorted even when a stale leader's commit lands late.
  uint64_t commit = r.commit_index();
  while (commit_term_.size() < commit) commit_term_.push_back(r.term());
  for (uint64_t k = commit; k > 0 && commit_term_[k - 1] > r.term(); --k) {
    commit_term_[k - 1] = r.term();
  }
}

// ---- Liveness ----

Status Simulator::CheckLiveness(int max_ticks, int* ticks) {
  StopFaults();
  HealNetwork();
  for (size_t i = 0; i < nodes_.size(); ++i) {
    nodes_[i].paused_steps = 0;
    if (!nodes_[i].raft) Start(i);
  }
  const std::string data = "final-" + std::to_string(options_.seed);
  enum class Phase { kElect, kReplicate, kRead } phase = Phase::kElect;
  std::string leader;
  uint64_t term = 0;
  uint64_t index = 0;
  uint64_t read = 0;
  for (int t = 1; t <= max_ticks; ++t) {
    if (Status s = Step(); !s.ok()) return s;
    const Raft* l = phase == Phase::kElect ? nullptr : node(leader);
    if (phase != Phase::kElect &&
        (l == nullptr || l->role() != Role::kLeader || l->term() != term)) {
      phase = Phase::kElect;  // lost it: start over with the next leader
    }
    if (phase == Phase::kElect) {
      std::vector<std::string> leaders = Leaders();
      if (leaders.size() != 1) continue;
      leader = leaders[0];
      term = node(leader)->term();
      Result<uint64_t> proposed = Propose(leader, data);
      if (!proposed.ok()) continue;
      index = *proposed;
      phase = Phase::kReplicate;
    } else if (phase == Phase::kReplicate) {
      bool everywhere = std::all_of(nodes_.begin(), nodes_.end(),
                                    [index](const Node& n) { return n.applied >= index; });
      if (!everywhere) continue;
      if (committed_[index - 1].data != HashData(data)) {
        return Status::Internal("liveness: entry " + std::to_string(index) + " is not ours");
      }
      read = next_read_++;
      size_t li = IndexOf(leader);
      if (!nodes_[li].raft->ReadIndex(read).ok()) continue;
      reads_[read] = ReadCheck{li, max_commit_};
      ProcessReady(li);
      phase = Phase::kRead;
    }
    if (phase == Phase::kRead && reads_ok_.count(read) != 0) {
      *ticks = t;
      return failure_;
    }
  }
  return Status::Timeout("seed " + std::to_string(options_.seed) + ": no progress within " +
                         std::to_string(max_ticks) + " ticks of healing:" + Describe());
}

bool Simulator::EverCommitted(const std::string& data) const {
  return committed_data_.count(HashData(data)) != 0;
}

void Simulator::Fail(const std::string& what) {
  if (failed()) return;
  failure_ = Status::Internal("seed " + std::to_string(options_.seed) + ", step " +
                              std::to_string(now_) + ": " + what + Describe());
}

}  // namespace meshbus::raft::sim
