#include "broker/raft_storage.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace meshbus::raft {
namespace {

constexpr char kHardStateFile[] = "raft-hardstate";
constexpr char kSnapshotFile[] = "raft-snapshot";
constexpr char kLogFile[] = "raft-log";

constexpr uint32_t kHardStateMagic = 0x5348424d;  // "MBHS"
constexpr uint32_t kSnapshotMagic = 0x4e53424d;   // "MBSN"
constexpr uint32_t kLogMagic = 0x4c52424d;        // "MBRL"
constexpr uint32_t kLogVersion = 1;
constexpr size_t kFrameHeader = 12;    // magic, length, crc
constexpr size_t kLogHeader = 28;      // magic, version, base index, base term, crc
constexpr size_t kRecordHeader = 8;    // length, crc
constexpr size_t kRecordMinimum = 16;  // index, term
// A length beyond this is damage, not an entry (registry entries are small).
constexpr size_t kRecordMaximum = 64u << 20;

constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = MakeCrc32cTable();

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

Status IoError(const std::string& what, const std::string& path) {
  return Status::Unavailable(what + " " + path + ": " + std::strerror(errno));
}

Status Corrupt(const std::string& path, const std::string& what) {
  return Status::Internal("corrupt " + path + ": " + what);
}

// A file that must be read whole: a magic, the payload's length and CRC.
std::string Frame(uint32_t magic, std::string_view payload) {
  std::string out;
  PutU32(&out, magic);
  PutU32(&out, static_cast<uint32_t>(payload.size()));
  PutU32(&out, Crc32c(payload));
  out.append(payload);
  return out;
}

Status Unframe(const std::string& path, uint32_t magic, const std::string& file,
               std::string_view* payload) {
  if (file.size() < kFrameHeader || GetU32(file.data()) != magic) {
    return Corrupt(path, "bad header");
  }
  size_t length = GetU32(file.data() + 4);
  if (file.size() - kFrameHeader != length) return Corrupt(path, "bad length");
  *payload = std::string_view(file).substr(kFrameHeader);
  if (Crc32c(*payload) != GetU32(file.data() + 8)) return Corrupt(path, "checksum mismatch");
  return Status::Ok();
}

Status ReadFile(const std::string& path, std::string* out, bool* exists) {
  out->clear();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *exists = false;
    return errno == ENOENT ? Status::Ok() : IoError("open", path);
  }
  *exists = true;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = IoError("read", path);
      close(fd);
      return s;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return Status::Ok();
}

Status ReadAt(int fd, std::string* out, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < out->size()) {
    ssize_t n =
        pread(fd, out->data() + done, out->size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", path);
    if (n == 0) return Status::Internal("corrupt " + path + ": shorter than recorded");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status WriteAt(int fd, std::string_view data, uint64_t offset, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("write", path);
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("open", dir);
  Status s = fsync(fd) == 0 ? Status::Ok() : IoError("fsync", dir);
  close(fd);
  return s;
}

// Readers see the old contents or the new, never a mix, even across a crash.
Status WriteFileAtomically(const std::string& dir, const std::string& path,
                           std::string_view contents) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("open", tmp);
  Status s = WriteAt(fd, contents, 0, tmp);
  if (s.ok() && fsync(fd) != 0) s = IoError("fsync", tmp);
  close(fd);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) s = IoError("rename", tmp);
  if (s.ok()) s = SyncDir(dir);
  return s;
}

bool AllZero(std::string_view bytes) {
  return bytes.find_first_not_of('\0') == std::string_view::npos;
}

std::string LogHeader(uint64_t base_index, uint64_t base_term) {
  std::string out;
  PutU32(&out, kLogMagic);
  PutU32(&out, kLogVersion);
  PutU64(&out, base_index);
  PutU64(&out, base_term);
  PutU32(&out, Crc32c(out));
  return out;
}

void AppendRecord(std::string* out, const Entry& e) {
  std::string payload;
  payload.reserve(kRecordMinimum + e.data.size());
  PutU64(&payload, e.index);
  PutU64(&payload, e.term);
  payload.append(e.data);
  PutU32(out, static_cast<uint32_t>(payload.size()));
  PutU32(out, Crc32c(payload));
  out->append(payload);
}

enum class RecordCheck { kOk, kTorn, kCorrupt };

// Checks the record at `pos`; sets *length to its payload's length when kOk.
// A write cut short by a crash leaves a short record, or one whose bytes
// never reached the disk (zeros, or garbage with nothing after it).
RecordCheck CheckRecord(std::string_view file, size_t pos, size_t* length) {
  std::string_view rest = file.substr(pos);
  if (rest.size() < kRecordHeader) return RecordCheck::kTorn;
  size_t len = GetU32(rest.data());
  if (len < kRecordMinimum || len > kRecordMaximum) {
    return AllZero(rest) ? RecordCheck::kTorn : RecordCheck::kCorrupt;
  }
  if (rest.size() - kRecordHeader < len) return RecordCheck::kTorn;
  if (Crc32c(rest.substr(kRecordHeader, len)) != GetU32(rest.data() + 4)) {
    return AllZero(rest.substr(kRecordHeader + len)) ? RecordCheck::kTorn : RecordCheck::kCorrupt;
  }
  *length = len;
  return RecordCheck::kOk;
}

}  // namespace

uint32_t Crc32c(std::string_view data) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : data) c = kCrc32cTable[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

Result<std::unique_ptr<RaftStorage>> RaftStorage::Open(const std::string& dir,
                                                       Recovered* recovered) {
  *recovered = Recovered{};
  if (mkdir(dir.c_str(), 0755) == 0) {
    std::string parent = std::filesystem::path(dir).parent_path().string();
    if (Status s = SyncDir(parent.empty() ? "." : parent); !s.ok()) return s;
  } else if (errno != EEXIST) {
    return IoError("mkdir", dir);
  }
  std::unique_ptr<RaftStorage> storage(new RaftStorage(dir));
  // Left by a crash in the middle of an atomic replace: the old file stands.
  for (const char* name : {kHardStateFile, kSnapshotFile, kLogFile}) {
    std::string tmp = storage->PathOf(name) + ".tmp";
    if (unlink(tmp.c_str()) != 0 && errno != ENOENT) return IoError("unlink", tmp);
  }
  DurableState& state = recovered->state;
  bool has_hard_state = false;
  bool has_snapshot = false;
  Status s = storage->LoadHardState(&state.hard_state, &has_hard_state);
  if (s.ok()) s = storage->LoadSnapshot(&state.snapshot, &has_snapshot);
  if (s.ok()) {
    s = storage->LoadLog(state.snapshot, has_hard_state || has_snapshot, &state.entries,
                         &recovered->warning);
  }
  if (!s.ok()) return s;
  return storage;
}

RaftStorage::~RaftStorage() {
  if (log_fd_ >= 0) close(log_fd_);
}

std::string RaftStorage::PathOf(std::string_view name) const {
  return dir_ + "/" + std::string(name);
}

Status RaftStorage::Fail(Status status) {
  failed_ = status;
  return status;
}

// ---- Recovery ----

Status RaftStorage::LoadHardState(HardState* out, bool* exists) const {
  std::string path = PathOf(kHardStateFile);
  std::string file;
  if (Status s = ReadFile(path, &file, exists); !s.ok() || !*exists) return s;
  std::string_view p;
  if (Status s = Unframe(path, kHardStateMagic, file, &p); !s.ok()) return s;
  if (p.size() < 20 || p.size() - 20 != GetU32(p.data() + 16)) return Corrupt(path, "bad vote");
  out->term = GetU64(p.data());
  out->commit = GetU64(p.data() + 8);
  out->voted_for = std::string(p.substr(20));
  return Status::Ok();
}

Status RaftStorage::LoadSnapshot(Snapshot* out, bool* exists) const {
  std::string path = PathOf(kSnapshotFile);
  std::string file;
  if (Status s = ReadFile(path, &file, exists); !s.ok() || !*exists) return s;
  std::string_view p;
  if (Status s = Unframe(path, kSnapshotMagic, file, &p); !s.ok()) return s;
  if (p.size() < 16) return Corrupt(path, "too short");
  out->index = GetU64(p.data());
  out->term = GetU64(p.data() + 8);
  out->data = std::string(p.substr(16));
  if (out->index == 0 || out->term == 0) return Corrupt(path, "no index or term");
  return Status::Ok();
}

Status RaftStorage::LoadLog(const Snapshot& snapshot, bool has_state, std::vector<Entry>* entries,
                            std::string* warning) {
  std::string path = PathOf(kLogFile);
  snapshot_index_ = snapshot.index;
  std::string file;
  bool exists = false;
  if (Status s = ReadFile(path, &file, &exists); !s.ok()) return s;
  if (!exists) {
    // The log is created before anything else is written: without it, the
    // entries this node acknowledged are gone, and starting empty would lie.
    if (has_state) return Corrupt(path, "missing, while the hard state or snapshot is there");
    return RewriteLog(snapshot.index, snapshot.term, 1);  // a fresh node
  }
  if (Status s = ParseLog(file, entries, warning); !s.ok()) return s;
  if (base_index_ > snapshot.index ||
      (base_index_ == snapshot.index && base_term_ != snapshot.term)) {
    return Corrupt(path, "the log does not continue the snapshot");
  }
  if (Status s = OpenLogForAppend(); !s.ok()) return s;
  if (base_index_ == snapshot.index) return Status::Ok();
  // A crash came between writing the snapshot and rewriting the log: finish it.
  uint64_t pos = snapshot.index - base_index_;  // entries up to the snapshot's
  bool has_it = snapshot.index <= last_index() && terms_[pos - 1] == snapshot.term;
  uint64_t keep_from = has_it ? snapshot.index + 1 : last_index() + 1;
  if (Status s = RewriteLog(snapshot.index, snapshot.term, keep_from); !s.ok()) return s;
  std::erase_if(*entries, [keep_from](const Entry& e) { return e.index < keep_from; });
  if (!warning->empty()) *warning += "; ";
  *warning += "raft-log: completed a compaction interrupted by a crash";
  return Status::Ok();
}

Status RaftStorage::ParseLog(const std::string& file, std::vector<Entry>* entries,
                             std::string* warning) {
  std::string path = PathOf(kLogFile);
  if (file.size() < kLogHeader || GetU32(file.data()) != kLogMagic ||
      GetU32(file.data() + 4) != kLogVersion ||
      Crc32c(std::string_view(file.data(), kLogHeader - 4)) != GetU32(file.data() + 24)) {
    return Corrupt(path, "bad header");
  }
  base_index_ = GetU64(file.data() + 8);
  base_term_ = GetU64(file.data() + 16);
  uint64_t term = base_term_;
  size_t pos = kLogHeader;
  while (pos < file.size()) {
    size_t len = 0;
    RecordCheck check = CheckRecord(file, pos, &len);
    if (check == RecordCheck::kCorrupt) {
      return Corrupt(path, "bad record at offset " + std::to_string(pos));
    }
    if (check == RecordCheck::kTorn) {
      *warning = "raft-log: cut a torn record at offset " + std::to_string(pos) + " (" +
                 std::to_string(file.size() - pos) + " bytes)";
      break;
    }
    const char* p = file.data() + pos + kRecordHeader;
    Entry e{GetU64(p + 8), GetU64(p), std::string(p + kRecordMinimum, len - kRecordMinimum)};
    if (e.index != last_index() + 1 || e.term < term) {
      return Corrupt(path, "entry out of sequence at offset " + std::to_string(pos));
    }
    term = e.term;
    offsets_.push_back(pos);
    terms_.push_back(e.term);
    entries->push_back(std::move(e));
    pos += kRecordHeader + len;
  }
  end_offset_ = pos;
  return Status::Ok();
}

// Opens the log for writing, and cuts off whatever follows the last good record.
Status RaftStorage::OpenLogForAppend() {
  std::string path = PathOf(kLogFile);
  if (log_fd_ >= 0) close(log_fd_);
  log_fd_ = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (log_fd_ < 0) return IoError("open", path);
  struct stat st;
  if (fstat(log_fd_, &st) != 0) return IoError("stat", path);
  if (static_cast<uint64_t>(st.st_size) != end_offset_) {
    if (ftruncate(log_fd_, static_cast<off_t>(end_offset_)) != 0) return IoError("truncate", path);
    if (fsync(log_fd_) != 0) return IoError("fsync", path);
  }
  return Status::Ok();
}

// Replaces the log file by one continuing from (base_index, base_term) with
// the current records from `keep_from` on.
Status RaftStorage::RewriteLog(uint64_t base_index, uint64_t base_term, uint64_t keep_from) {
  std::string path = PathOf(kLogFile);
  std::string contents = LogHeader(base_index, base_term);
  std::vector<uint64_t> offsets;
  std::vector<uint64_t> terms;
  if (keep_from <= last_index()) {
    size_t first = keep_from - first_index();
    uint64_t start = offsets_[first];
    std::string tail(end_offset_ - start, '\0');
    if (Status s = ReadAt(log_fd_, &tail, start, path); !s.ok()) return s;
    for (size_t i = first; i < offsets_.size(); ++i) {
      offsets.push_back(offsets_[i] - start + kLogHeader);
      terms.push_back(terms_[i]);
    }
    contents += tail;
  }
  if (Status s = WriteFileAtomically(dir_, path, contents); !s.ok()) return s;
  base_index_ = base_index;
  base_term_ = base_term;
  offsets_ = std::move(offsets);
  terms_ = std::move(terms);
  end_offset_ = contents.size();
  return OpenLogForAppend();
}

// ---- Writes ----

Status RaftStorage::Save(const Ready& ready) {
  if (ready.snapshot) {
    if (Status s = SaveSnapshot(*ready.snapshot); !s.ok()) return s;
  }
  if (!ready.entries.empty()) {
    if (Status s = Append(ready.entries); !s.ok()) return s;
  }
  if (ready.hard_state) return SaveHardState(*ready.hard_state);
  return Status::Ok();
}

Status RaftStorage::SaveHardState(const HardState& hs) {
  if (!failed_.ok()) return failed_;
  std::string payload;
  PutU64(&payload, hs.term);
  PutU64(&payload, hs.commit);
  PutU32(&payload, static_cast<uint32_t>(hs.voted_for.size()));
  payload += hs.voted_for;
  Status s = WriteFileAtomically(dir_, PathOf(kHardStateFile), Frame(kHardStateMagic, payload));
  return s.ok() ? s : Fail(s);
}

Status RaftStorage::Append(const std::vector<Entry>& entries) {
  if (!failed_.ok()) return failed_;
  if (entries.empty()) return Status::Ok();
  uint64_t first = entries.front().index;
  if (first <= base_index_ || first > last_index() + 1) {
    return Status::InvalidArgument(
        "raft storage: entry " + std::to_string(first) + " does not follow on from the log (" +
        std::to_string(first_index()) + ".." + std::to_string(last_index()) + ")");
  }
  uint64_t term = first - 1 == base_index_ ? base_term_ : terms_[first - 1 - first_index()];
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].index != first + i || entries[i].term < term) {
      return Status::InvalidArgument("raft storage: entries out of sequence");
    }
    term = entries[i].term;
  }
  std::string path = PathOf(kLogFile);
  if (first <= last_index()) {
    // Overwriting a conflicting suffix. The cut is made durable before the
    // new records go in, so that a crash cannot leave old records after them.
    size_t keep = first - first_index();
    end_offset_ = offsets_[keep];
    offsets_.resize(keep);
    terms_.resize(keep);
    if (ftruncate(log_fd_, static_cast<off_t>(end_offset_)) != 0) {
      return Fail(IoError("truncate", path));
    }
    if (fdatasync(log_fd_) != 0) return Fail(IoError("fdatasync", path));
  }
  std::string batch;
  std::vector<uint64_t> offsets;
  for (const Entry& e : entries) {
    offsets.push_back(end_offset_ + batch.size());
    AppendRecord(&batch, e);
  }
  if (Status s = WriteAt(log_fd_, batch, end_offset_, path); !s.ok()) return Fail(s);
  if (fdatasync(log_fd_) != 0) return Fail(IoError("fdatasync", path));
  offsets_.insert(offsets_.end(), offsets.begin(), offsets.end());
  for (const Entry& e : entries) terms_.push_back(e.term);
  end_offset_ += batch.size();
  return Status::Ok();
}

Status RaftStorage::SaveSnapshot(const Snapshot& snapshot) {
  if (!failed_.ok()) return failed_;
  if (snapshot.index <= snapshot_index_ || snapshot.term == 0) {
    return Status::InvalidArgument("raft storage: snapshot at " + std::to_string(snapshot.index) +
                                   " does not follow the stored one at " +
                                   std::to_string(snapshot_index_));
  }
  std::string payload;
  PutU64(&payload, snapshot.index);
  PutU64(&payload, snapshot.term);
  payload += snapshot.data;
  Status s = WriteFileAtomically(dir_, PathOf(kSnapshotFile), Frame(kSnapshotMagic, payload));
  if (!s.ok()) return Fail(s);
  snapshot_index_ = snapshot.index;
  // Keep what follows the snapshot's entry if we hold that entry; otherwise
  // the log diverged from the leader's and goes entirely.
  bool has_it = snapshot.index > base_index_ && snapshot.index <= last_index() &&
                terms_[snapshot.index - first_index()] == snapshot.term;
  uint64_t keep_from = has_it ? snapshot.index + 1 : last_index() + 1;
  s = RewriteLog(snapshot.index, snapshot.term, keep_from);
  return s.ok() ? s : Fail(s);
}

}  // namespace meshbus::raft
