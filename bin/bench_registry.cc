// The registry figures of meshbus-bench. Every mesh has 3 voters, each
// broker with its --data-dir on this machine's disk (under the mesh's
// directory in /tmp; the table says which file system), so every
// acknowledged write has been fsync'd by a majority. Clients run in this
// process, each on a thread of its own when several call at once. Names are
// distinct in every run; the clients of a run are closed after it, and the
// next run starts once their names have been released. Every run is bounded
// in count and in time, and every broker is stopped by its pid (ProcessMesh).
#include "bin/bench_registry.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <thread>

#include "bin/bench_messaging.h"

namespace meshbus::bench {
namespace {

using namespace std::chrono_literals;
using testing::ProcessMesh;

constexpr int kWarmUp = 50;                      // registrations before each client's first run
constexpr int kSequential = 1000;                // registrations per sequential run
constexpr int kInFlight = 100;                   // clients, each with one call outstanding
constexpr int kInFlightTotal = 20000;            // registrations per 100-in-flight run
constexpr int kReads = 2000;                     // whereis calls per run
constexpr int kConsistentReads = 1000;           // whereis_consistent calls per run
constexpr int kFailoverAttempts = 50;            // registrations tried after a kill, at most
constexpr int kDiskSamples = 500;                // raw fdatasync samples
constexpr Clock::duration kRunLimit = 30s;       // per run
constexpr Clock::duration kSettleLimit = 20s;    // leader election, names replicated or released
constexpr Clock::duration kFailoverLimit = 30s;  // from the kill to the first ok
// What a service would register: its address.
const std::string kMetadata = R"({"addr":"tcp://10.0.0.7:5555"})";

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Failed calls by status code, with the first one's message.
class Errors {
 public:
  void Add(const Status& s) {
    ++counts_[std::string(CodeName(s.code()))];
    if (first_.empty()) first_ = s.ToString();
  }
  void Merge(const Errors& o) {
    for (const auto& [code, n] : o.counts_) counts_[code] += n;
    if (first_.empty()) first_ = o.first_;
  }
  uint64_t total() const {
    uint64_t n = 0;
    for (const auto& [code, c] : counts_) n += c;
    return n;
  }
  // "none", or e.g. "no_leader 3, timeout 1".
  std::string Text() const {
    if (counts_.empty()) return "none";
    std::string t;
    for (const auto& [code, n] : counts_) {
      t += (t.empty() ? "" : ", ") + code + " " + std::to_string(n);
    }
    return t;
  }
  const std::string& first() const { return first_; }

 private:
  std::map<std::string, uint64_t> counts_;
  std::string first_;
};

// The calls of one run: only ok answers count, and are timed.
struct Run {
  uint64_t ok = 0;
  Errors errors;
  std::vector<double> us;  // each ok call's latency
  Clock::duration took{};

  double rate() const { return ok / std::max(Seconds(took), 1e-9); }
  void Merge(const Run& o) {
    ok += o.ok;
    errors.Merge(o.errors);
    us.insert(us.end(), o.us.begin(), o.us.end());
  }
};

// ---- the table --------------------------------------------------------------

struct Row {
  std::string measure, figure, detail, errors;
};

class Table {
 public:
  void Add(Row row) {
    std::printf("  %-56s %-22s %s; errors: %s\n", row.measure.c_str(), row.figure.c_str(),
                row.detail.c_str(), row.errors.c_str());
    std::fflush(stdout);
    rows_.push_back(std::move(row));
  }
  void Note(std::string line) {
    std::printf("  note: %s\n", line.c_str());
    notes_.push_back(std::move(line));
  }
  void Print() const {
    std::printf("\n%-58s %-20s %-58s %s\n", "registry, 3 voters", "figure", "detail", "errors");
    std::printf("%s\n", std::string(150, '-').c_str());
    for (const Row& r : rows_) {
      std::printf("%-58s %-20s %-58s %s\n", r.measure.c_str(), r.figure.c_str(), r.detail.c_str(),
                  r.errors.c_str());
    }
    for (const std::string& n : notes_) std::printf("note: %s\n", n.c_str());
  }

 private:
  std::vector<Row> rows_;
  std::vector<std::string> notes_;
};

Row RateRow(const std::string& measure, const Run& r) {
  char figure[64], detail[160];
  std::snprintf(figure, sizeof figure, "%.0f /s", r.rate());
  std::snprintf(detail, sizeof detail, "%llu ok in %.2f s; latency p50 %s, p99 %s",
                static_cast<unsigned long long>(r.ok), Seconds(r.took),
                TimeText(Percentile(r.us, 0.5)).c_str(), TimeText(Percentile(r.us, 0.99)).c_str());
  return {measure, figure, detail, r.errors.Text()};
}

Row LatencyRow(const std::string& measure, const Run& r) {
  std::string figure = TimeText(Percentile(r.us, 0.5)) + " / " + TimeText(Percentile(r.us, 0.99));
  char detail[160];
  std::snprintf(detail, sizeof detail, "p50 / p99 of %llu ok calls (%.0f /s one at a time)",
                static_cast<unsigned long long>(r.ok), r.rate());
  return {measure, figure, detail, r.errors.Text()};
}

// ---- where the brokers keep their state ---------------------------------------

// The value of `--flag VALUE` or `--flag=VALUE` on a process's command line.
std::string FlagOf(pid_t pid, const std::string& flag) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == flag && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind(flag + "=", 0) == 0) return args[i].substr(flag.size() + 1);
  }
  return "";
}

// "ext4 on /dev/vda": the file system holding `path`, from /proc/mounts.
std::string FileSystemOf(const std::string& path) {
  std::error_code ec;
  std::string p = std::filesystem::weakly_canonical(path, ec).string();
  if (ec) p = path;
  std::ifstream mounts("/proc/mounts");
  std::string device, point, type, rest, best_point, best;
  while (mounts >> device >> point >> type && std::getline(mounts, rest)) {
    bool under = p.rfind(point, 0) == 0 &&
                 (point == "/" || p.size() == point.size() || p[point.size()] == '/');
    if (under && point.size() >= best_point.size()) {
      best_point = point;
      best = type + " on " + device;
    }
  }
  return best.empty() ? "unknown file system" : best;
}

// What a durable write costs on that disk, without meshbus: appending 100 B
// and fdatasync (the log), and replacing a small file atomically (write,
// fsync, rename, fsync of the directory: the hard state).
struct DiskCost {
  Run append, replace;
};

DiskCost MeasureDisk(const std::string& dir) {
  DiskCost d;
  const std::string record(100, 'x');
  const std::string log = dir + "/bench-disk-log", tmp = dir + "/bench-disk-tmp",
                    file = dir + "/bench-disk-file";
  int fd = ::open(log.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  auto deadline = Clock::now() + 10s;
  for (int i = 0; fd >= 0 && i < kDiskSamples && Clock::now() < deadline; ++i) {
    auto t0 = Clock::now();
    if (::write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size()) ||
        ::fdatasync(fd) != 0) {
      d.append.errors.Add(Status::Internal("append + fdatasync failed"));
      break;
    }
    d.append.us.push_back(Micros(Clock::now() - t0));
    ++d.append.ok;
  }
  deadline = Clock::now() + 10s;
  for (int i = 0; dir_fd >= 0 && i < kDiskSamples && Clock::now() < deadline; ++i) {
    auto t0 = Clock::now();
    int t = ::open(tmp.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = t >= 0 &&
              ::write(t, record.data(), record.size()) == static_cast<ssize_t>(record.size()) &&
              ::fsync(t) == 0;
    if (t >= 0) ::close(t);
    ok = ok && ::rename(tmp.c_str(), file.c_str()) == 0 && ::fsync(dir_fd) == 0;
    if (!ok) {
      d.replace.errors.Add(Status::Internal("atomic replace failed"));
      break;
    }
    d.replace.us.push_back(Micros(Clock::now() - t0));
    ++d.replace.ok;
  }
  if (fd >= 0) ::close(fd);
  if (dir_fd >= 0) ::close(dir_fd);
  for (const std::string& f : {log, tmp, file}) ::unlink(f.c_str());
  return d;
}

// ---- the mesh's registry --------------------------------------------------------

// Node "nK" of a mesh-up.sh mesh is index K-1; -1 if not one of its n nodes.
int IndexOf(const std::string& node, int n) {
  for (int i = 0; i < n; ++i) {
    if (node == "n" + std::to_string(i + 1)) return i;
  }
  return -1;
}

struct LeaderView {
  int index = -1;
  std::string node;
  uint64_t term = 0;
};

// Asks every broker in `nodes` until all name the same leader in the same
// term; exits the benchmark if they do not within kSettleLimit.
LeaderView AwaitLeader(const ProcessMesh& mesh, const std::vector<int>& nodes) {
  std::vector<Client> clients;
  for (int i : nodes) clients.push_back(MustConnect(mesh, i, "bench-leader"));
  std::string last = "no answer yet";
  auto deadline = Clock::now() + kSettleLimit;
  while (Clock::now() < deadline) {
    LeaderView v;
    bool agree = true;
    for (Client& c : clients) {
      Result<LeaderInfo> l = c.Leader();
      if (!l.ok()) {
        last = c.node() + ": " + l.status().ToString();
      } else if (!l->problem.empty()) {
        last = l->node + ": " + l->problem;
      } else if (l->leader.empty()) {
        last = l->node + " knows no leader (" + l->role + ", term " + std::to_string(l->term) + ")";
      } else if (v.node.empty() || (l->leader == v.node && l->term == v.term)) {
        v.node = l->leader;
        v.term = l->term;
        continue;
      } else {
        last = "brokers name different leaders";
      }
      agree = false;
      break;
    }
    if (agree) {
      v.index = IndexOf(v.node, mesh.size());
      if (v.index >= 0) return v;
      last = "the leader " + v.node + " is not a node of this mesh";
    }
    std::this_thread::sleep_for(20ms);
  }
  Die("no registry leader that every broker agrees on", Status::Timeout(last));
}

// Waits until `c`'s local copy holds `want` names starting with `prefix`.
bool AwaitNames(Client& c, const std::string& prefix, size_t want) {
  auto deadline = Clock::now() + kSettleLimit;
  while (Clock::now() < deadline) {
    Result<std::vector<NameInfo>> names = c.Names(prefix);
    if (names.ok() && names->size() == want) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// ---- the runs -----------------------------------------------------------------

// `count` registrations one after another, of prefix0, prefix1, ...
Run RegisterSequential(Client& c, const std::string& prefix, int count) {
  Run r;
  auto t0 = Clock::now();
  for (int i = 0; i < count && Clock::now() - t0 < kRunLimit; ++i) {
    auto s0 = Clock::now();
    Status s = c.Register(prefix + std::to_string(i), kMetadata);
    if (s.ok()) {
      r.us.push_back(Micros(Clock::now() - s0));
      ++r.ok;
    } else {
      r.errors.Add(s);
    }
  }
  r.took = Clock::now() - t0;
  return r;
}

// kInFlightTotal registrations from kInFlight clients on `node`, each on a
// thread of its own calling Register one after another, so that kInFlight
// calls are outstanding until the last few. The clients are closed when it
// returns (their sessions end, and with them their names).
Run RegisterInFlight(const ProcessMesh& mesh, int node, const std::string& prefix) {
  std::vector<Client> clients;
  for (int i = 0; i < kInFlight; ++i) clients.push_back(MustConnect(mesh, node, "bench-registrar"));
  std::vector<Run> runs(kInFlight);
  std::atomic<int> next{0};
  std::latch start(1);
  Clock::time_point deadline;
  std::vector<std::thread> threads;
  for (int i = 0; i < kInFlight; ++i) {
    threads.emplace_back([&, i] {
      start.wait();
      Run& r = runs[i];
      Client& c = clients[i];
      while (Clock::now() < deadline) {
        int k = next.fetch_add(1);
        if (k >= kInFlightTotal) break;
        auto s0 = Clock::now();
        Status s = c.Register(prefix + std::to_string(k), kMetadata);
        if (s.ok()) {
          r.us.push_back(Micros(Clock::now() - s0));
          ++r.ok;
        } else {
          r.errors.Add(s);
        }
      }
    });
  }
  auto t0 = Clock::now();
  deadline = t0 + kRunLimit;
  start.count_down();
  for (std::thread& t : threads) t.join();
  Run all;
  all.took = Clock::now() - t0;
  for (const Run& r : runs) all.Merge(r);
  return all;
}

// `count` lookups of the given names, one after another. Ok only when the
// name is found.
Run ReadRun(Client& c, const std::vector<std::string>& names, int count, bool consistent) {
  Run r;
  auto t0 = Clock::now();
  for (int i = 0; i < count && Clock::now() - t0 < kRunLimit; ++i) {
    const std::string& name = names[(static_cast<size_t>(i) * 7919) % names.size()];
    auto s0 = Clock::now();
    Result<NameInfo> info = consistent ? c.WhereisConsistent(name) : c.Whereis(name);
    double us = Micros(Clock::now() - s0);
    if (info.ok() && info->name == name) {
      r.us.push_back(us);
      ++r.ok;
    } else {
      r.errors.Add(info.ok() ? Status::Internal("answered for another name") : info.status());
    }
  }
  r.took = Clock::now() - t0;
  return r;
}

// Waits until the names under `prefix` are released (their clients closed).
void AwaitReleased(Client& observer, const std::string& prefix, Table* t) {
  if (!AwaitNames(observer, prefix, 0)) {
    t->Note("names under '" + prefix + "' still held " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kSettleLimit).count()) +
            " s after their sessions ended");
  }
}

// Registrations, whereis and whereis_consistent on one mesh.
void SteadyState(Table* t) {
  std::unique_ptr<ProcessMesh> mesh = MustUp(3);
  LeaderView leader = AwaitLeader(*mesh, {0, 1, 2});
  const int l = leader.index, f = (l + 1) % 3, other = (l + 2) % 3;
  const std::string ln = "n" + std::to_string(l + 1), fn = "n" + std::to_string(f + 1);

  std::string voters = FlagOf(mesh->pid(0), "--voters");
  std::string data = FlagOf(mesh->pid(0), "--data-dir");
  if (data.empty()) {
    Die("meshbusd runs without --data-dir",
        Status::InvalidArgument("scripts/mesh-up.sh should give every broker one"));
  }
  std::printf("mesh in %s: voters %s; n1's --data-dir %s (%s); leader %s in term %llu\n",
              mesh->dir().c_str(), voters.c_str(), data.c_str(), FileSystemOf(data).c_str(),
              leader.node.c_str(), static_cast<unsigned long long>(leader.term));
  std::fflush(stdout);
  {
    std::string parent = std::filesystem::path(data).parent_path().string();
    DiskCost d = MeasureDisk(parent);
    t->Add(
        {"disk alone: append 100 B + fdatasync, p50 / p99",
         TimeText(Percentile(d.append.us, 0.5)) + " / " + TimeText(Percentile(d.append.us, 0.99)),
         std::to_string(d.append.ok) + " in " + parent + " (" + FileSystemOf(parent) + ")",
         d.append.errors.Text()});
    t->Add(
        {"disk alone: replace a 100 B file atomically, p50 / p99",
         TimeText(Percentile(d.replace.us, 0.5)) + " / " + TimeText(Percentile(d.replace.us, 0.99)),
         std::to_string(d.replace.ok) + " (write, fsync, rename, fsync dir)",
         d.replace.errors.Text()});
  }

  Client observer = MustConnect(*mesh, other, "bench-observer");
  std::vector<std::string> names;
  {
    Client on_follower = MustConnect(*mesh, f, "bench-registrar");
    Client on_leader = MustConnect(*mesh, l, "bench-registrar");
    (void)RegisterSequential(on_follower, "bench-warm-f-", kWarmUp);
    (void)RegisterSequential(on_leader, "bench-warm-l-", kWarmUp);
    Run seq_f = RegisterSequential(on_follower, "bench-seq-f-", kSequential);
    t->Add(RateRow("register, sequential, 1 client on follower " + fn, seq_f));
    Run seq_l = RegisterSequential(on_leader, "bench-seq-l-", kSequential);
    t->Add(RateRow("register, sequential, 1 client on leader " + ln, seq_l));

    // Read what was registered, once both copies have it.
    for (int i = 0; i < kSequential; ++i) {
      names.push_back("bench-seq-f-" + std::to_string(i));
      names.push_back("bench-seq-l-" + std::to_string(i));
    }
    size_t held = seq_f.ok + seq_l.ok + 2 * kWarmUp;
    if (!AwaitNames(on_follower, "bench-", held) || !AwaitNames(on_leader, "bench-", held)) {
      t->Note("the local copies did not reach " + std::to_string(held) + " names");
    }
    (void)ReadRun(on_follower, names, 200, false);  // warm-up
    t->Add(LatencyRow("whereis (local copy), client on follower " + fn,
                      ReadRun(on_follower, names, kReads, false)));
    t->Add(LatencyRow("whereis (local copy), client on leader " + ln,
                      ReadRun(on_leader, names, kReads, false)));
    (void)ReadRun(on_follower, names, 100, true);  // warm-up
    t->Add(LatencyRow("whereis_consistent, client on follower " + fn,
                      ReadRun(on_follower, names, kConsistentReads, true)));
    t->Add(LatencyRow("whereis_consistent, client on leader " + ln,
                      ReadRun(on_leader, names, kConsistentReads, true)));
  }  // both clients closed: their names are released
  AwaitReleased(observer, "bench-", t);

  Run par_f = RegisterInFlight(*mesh, f, "bench-par-f-");
  t->Add(RateRow("register, 100 in flight (100 clients) on follower " + fn, par_f));
  AwaitReleased(observer, "bench-", t);
  Run par_l = RegisterInFlight(*mesh, l, "bench-par-l-");
  t->Add(RateRow("register, 100 in flight (100 clients) on leader " + ln, par_l));
  AwaitReleased(observer, "bench-", t);

  Result<LeaderInfo> after = observer.Leader();
  if (!after.ok() || after->leader != leader.node || after->term != leader.term) {
    t->Note("the leader changed during the runs: now " +
            (after.ok() ? after->leader + " in term " + std::to_string(after->term)
                        : after.status().ToString()));
  }
}

// One failover round on a fresh mesh: ms from kill -9 of the leader to the
// first ok registration from a client on a surviving node; -1 if none came.
struct Failover {
  double ms = -1;
  int attempts = 0;
  Errors errors;
  uint64_t acked = 0, kept = 0;
};

Failover FailoverRound(int round) {
  Failover out;
  std::unique_ptr<ProcessMesh> mesh = MustUp(3);
  LeaderView before = AwaitLeader(*mesh, {0, 1, 2});
  const int survivor = (before.index + 1) % 3, other = (before.index + 2) % 3;
  // The client of the attempts: each Register bounded by its call timeout.
  ClientOptions o;
  o.endpoint = mesh->client_endpoint(survivor);
  o.name = "bench-failover";
  o.call_timeout = 3000ms;
  Result<Client> connected = Client::Connect(o);
  if (!connected.ok()) Die("connect to the survivor", connected.status());
  Client c = std::move(connected.value());
  // Acknowledged before the kill: every one must be there after it.
  std::vector<std::string> acked;
  for (int i = 0; i < 100; ++i) {
    std::string name = "bench-fo-before-" + std::to_string(i);
    if (c.Register(name, kMetadata).ok()) acked.push_back(name);
  }
  out.acked = acked.size();

  auto t0 = Clock::now();
  if (!mesh->Signal(before.index, SIGKILL)) {
    Die("kill -9 of the leader", Status::Internal("no such process"));
  }
  while (out.attempts < kFailoverAttempts && Clock::now() - t0 < kFailoverLimit) {
    ++out.attempts;
    auto a0 = Clock::now();
    Status s = c.Register("bench-fo-after", kMetadata);
    if (s.ok()) {
      out.ms = Micros(Clock::now() - t0) / 1000;
      break;
    }
    out.errors.Add(s);
    // A quick refusal is not retried at once.
    if (Clock::now() - a0 < 10ms) std::this_thread::sleep_for(10ms);
  }
  LeaderView after = AwaitLeader(*mesh, {survivor, other});
  for (const std::string& name : acked) {
    Result<NameInfo> info = c.WhereisConsistent(name);
    if (info.ok() && info->holder == c.self()) ++out.kept;
  }
  std::printf(
      "  failover %d: killed leader %s (term %llu); a client on n%d got its first ok after %s "
      "(%d attempt%s; errors: %s); new leader %s in term %llu; %llu of %llu names acknowledged "
      "before the kill still held\n",
      round, before.node.c_str(), static_cast<unsigned long long>(before.term), survivor + 1,
      out.ms < 0 ? "none" : TimeText(out.ms * 1000).c_str(), out.attempts,
      out.attempts == 1 ? "" : "s", out.errors.Text().c_str(), after.node.c_str(),
      static_cast<unsigned long long>(after.term), static_cast<unsigned long long>(out.kept),
      static_cast<unsigned long long>(out.acked));
  if (!out.errors.first().empty()) std::printf("    first error: %s\n", out.errors.first().c_str());
  std::fflush(stdout);
  return out;
}

void FailoverRounds(int rounds, Table* t) {
  std::vector<double> ms;
  Errors errors;
  int failed = 0;
  uint64_t acked = 0, kept = 0;
  for (int i = 1; i <= rounds; ++i) {
    Failover f = FailoverRound(i);
    if (f.ms >= 0) {
      ms.push_back(f.ms);
    } else {
      ++failed;
    }
    errors.Merge(f.errors);
    acked += f.acked;
    kept += f.kept;
  }
  char figure[64], detail[160];
  if (ms.empty()) {
    std::snprintf(figure, sizeof figure, "none");
  } else {
    std::snprintf(figure, sizeof figure, "median %.0f ms", Percentile(ms, 0.5));
  }
  std::snprintf(detail, sizeof detail,
                "min %.0f, max %.0f ms; %zu of %d rounds ok, a fresh mesh each",
                ms.empty() ? 0.0 : *std::min_element(ms.begin(), ms.end()),
                ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end()), ms.size(), rounds);
  t->Add(
      {"kill -9 of the leader -> first ok register on a survivor", figure, detail, errors.Text()});
  if (failed > 0) t->Note(std::to_string(failed) + " failover rounds got no ok at all");
  if (kept != acked) {
    t->Note("acknowledged names lost in failover: " + std::to_string(acked - kept) + " of " +
            std::to_string(acked));
  } else {
    t->Note("failover: all " + std::to_string(acked) +
            " names acknowledged before the kills were still held after them");
  }
}

}  // namespace

void RegistryBenchmarks(int failover_rounds) {
  std::printf(
      "registry: meshes of 3 voting meshbusd (--voters n1,n2,n3), each with its --data-dir on "
      "this\nmachine's disk, so every acknowledged write is fsync'd by a majority (leader and one "
      "follower).\nClients in this process over ipc; only ok answers count, errors are listed "
      "by status code.\n");
  Table table;
  SteadyState(&table);
  FailoverRounds(failover_rounds, &table);
  table.Print();
}

}  // namespace meshbus::bench
