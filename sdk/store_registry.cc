#include "sdk/store_registry.h"

#include <algorithm>
#include <chrono>

namespace meshbus::eventstore {
namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A registry name under StoreNamePrefix() read back as an entry. kNotFound:
// not a store announcement (another name, or one whose parts disagree with
// its metadata, which only a hand-made registration could produce).
Result<StoreEntry> EntryOf(const NameInfo& info) {
  const std::string prefix = StoreNamePrefix();
  if (info.name.compare(0, prefix.size(), prefix) != 0) {
    return Status::NotFound("not a store announcement: " + info.name);
  }
  Result<StoreAnnouncement> a = DecodeStoreAnnouncement(info.metadata);
  if (!a.ok()) return Status::NotFound("not a store announcement: " + a.status().ToString());
  if (info.name != StoreName(a->config.store_id, info.holder.node)) {
    return Status::NotFound("a store announcement under the wrong name: " + info.name);
  }
  return StoreEntry{std::move(a->config), info.holder.node, info.holder, a->registered_at_us};
}

std::vector<StoreEntry> EntriesOf(const std::vector<NameInfo>& names) {
  std::vector<StoreEntry> out;
  for (const NameInfo& n : names) {
    if (Result<StoreEntry> e = EntryOf(n); e.ok()) out.push_back(std::move(*e));
  }
  std::sort(out.begin(), out.end(), [](const StoreEntry& a, const StoreEntry& b) {
    return std::tie(a.config.store_id, a.node) < std::tie(b.config.store_id, b.node);
  });
  return out;
}

Result<std::vector<StoreEntry>> Listing(Client& client, const std::string& prefix) {
  Result<std::vector<NameInfo>> names = client.Names(prefix);
  if (!names.ok()) return names.status();
  return EntriesOf(*names);
}

}  // namespace

Status AnnounceStore(Client& client, const StoreConfig& config) {
  if (Status s = ValidateStoreConfig(config); !s.ok()) return s;
  std::string metadata = EncodeStoreAnnouncement({NowMicros(), config});
  if (metadata.size() > kMaxNameMetadataBytes) {
    return Status::TooLarge("store config of " + std::to_string(metadata.size()) +
                            " bytes is over " + std::to_string(kMaxNameMetadataBytes));
  }
  MemberId holder;
  Status s = client.Register(StoreName(config.store_id, client.node()), metadata, &holder);
  if (s.code() == Code::kTaken) {
    return Status::Taken("store " + config.store_id + " is announced on " + client.node() + " by " +
                         holder.ToString());
  }
  return s;
}

Status UnannounceStore(Client& client, const std::string& store_id) {
  if (Status s = ValidateStoreId(store_id); !s.ok()) return s;
  MemberId holder;
  Status s = client.Unregister(StoreName(store_id, client.node()), &holder);
  switch (s.code()) {
    case Code::kNotRegistered:
      return Status::NotFound("store " + store_id + " is not announced on " + client.node());
    case Code::kNotHolder:
      return Status::NotHolder("store " + store_id + " was announced on " + client.node() + " by " +
                               holder.ToString());
    default:
      return s;
  }
}

Result<std::vector<StoreEntry>> ListStores(Client& client) {
  return Listing(client, StoreNamePrefix());
}

Result<std::vector<StoreEntry>> ListStoresOnNode(Client& client, const std::string& node) {
  if (Status s = ValidateNodeName(node); !s.ok()) return s;
  Result<std::vector<StoreEntry>> all = ListStores(client);
  if (!all.ok()) return all;
  std::erase_if(*all, [&](const StoreEntry& e) { return e.node != node; });
  return all;
}

Result<std::vector<StoreEntry>> StoreInfo(Client& client, const std::string& store_id) {
  if (Status s = ValidateStoreId(store_id); !s.ok()) return s;
  // Ids have no '/', so this prefix is exactly this store's names.
  Result<std::vector<StoreEntry>> entries = Listing(client, StoreName(store_id, ""));
  if (!entries.ok()) return entries;
  if (entries->empty()) return Status::NotFound("store " + store_id + " is not announced");
  return entries;
}

std::string_view StoreEventKindName(StoreEventKind kind) {
  return kind == StoreEventKind::kAnnounced ? "announced" : "retired";
}

Result<StoreMonitorStart> SubscribeStoreEvents(Client& client) {
  Result<NamesMonitorStart> m = client.MonitorNames(StoreNamePrefix());
  if (!m.ok()) return m.status();
  return StoreMonitorStart{m->ref, EntriesOf(m->names)};
}

Result<StoreEvent> AsStoreEvent(const NameEvent& event) {
  Result<StoreEntry> entry = EntryOf(event.entry);
  if (!entry.ok()) return entry.status();
  return StoreEvent{event.ref,
                    event.kind == NameEventKind::kRegistered ? StoreEventKind::kAnnounced
                                                             : StoreEventKind::kRetired,
                    std::move(*entry)};
}

}  // namespace meshbus::eventstore
