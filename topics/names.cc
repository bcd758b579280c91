#include "topics/names.h"

#include <unistd.h>

#include <charconv>

namespace meshbus {
namespace {

Status ValidateLabel(std::string_view what, std::string_view s, size_t max) {
  if (s.empty()) return Status::InvalidArgument(std::string(what) + " is empty");
  if (s.size() > max) {
    return Status::InvalidArgument(std::string(what) + " is longer than " + std::to_string(max) +
                                   " bytes");
  }
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument(std::string(what) + " contains a control character");
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateNodeName(std::string_view name) {
  if (name.empty()) return Status::InvalidArgument("node name is empty");
  if (name.size() > kMaxNodeNameBytes) {
    return Status::InvalidArgument("node name is longer than " + std::to_string(kMaxNodeNameBytes) +
                                   " bytes");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) {
      return Status::InvalidArgument("node name '" + std::string(name) +
                                     "' may only hold letters, digits, '_' and '-'");
    }
  }
  return Status::Ok();
}

Status ValidateScope(std::string_view scope) {
  return ValidateLabel("scope", scope, kMaxScopeBytes);
}
Status ValidateGroup(std::string_view group) {
  return ValidateLabel("group", group, kMaxGroupBytes);
}

Status ValidateTopic(std::string_view topic) {
  return ValidateLabel("topic", topic, kMaxTopicBytes);
}
Status ValidateTopicPrefix(std::string_view prefix) {
  if (prefix.empty()) return Status::Ok();
  return ValidateLabel("topic prefix", prefix, kMaxTopicBytes);
}

std::string PublishDataTopic(std::string_view topic_or_prefix) {
  std::string t;
  t.reserve(1 + topic_or_prefix.size());
  t += kPublishTopicMark;
  t += topic_or_prefix;
  return t;
}

std::string BroadcastDataTopic(std::string_view scope, std::string_view group) {
  std::string t;
  t.reserve(3 + scope.size() + group.size());
  t += kBroadcastTopicMark;
  t += scope;
  t += '\0';  // scopes and groups hold no control bytes, so this ends each
  t += group;
  t += '\0';
  return t;
}

Status ValidateEndpoint(std::string_view ep) {
  Status s = ValidateLabel("endpoint", ep, kMaxEndpointBytes);
  if (!s.ok()) return s;
  for (std::string_view prefix : {"tcp://", "ipc://", "inproc://"}) {
    if (ep.substr(0, prefix.size()) == prefix && ep.size() > prefix.size()) return Status::Ok();
  }
  return Status::InvalidArgument("endpoint '" + std::string(ep) +
                                 "' is not tcp://, ipc:// or inproc://");
}

std::string DefaultNodeName() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == 0) return "node";
  std::string name;
  for (const char* c = host; *c && *c != '.' && name.size() < kMaxNodeNameBytes; ++c) {
    bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-';
    name += ok ? *c : '-';
  }
  return name.empty() ? "node" : name;
}

std::string IncarnationHex(uint64_t incarnation) {
  char buf[17];
  auto r = std::to_chars(buf, buf + sizeof buf, incarnation, 16);
  return std::string(buf, r.ptr);
}

std::string MemberId::ToString() const {
  return node + "." + IncarnationHex(incarnation) + "." + std::to_string(session);
}

std::optional<MemberId> MemberId::Parse(std::string_view text) {
  size_t d1 = text.find('.');
  if (d1 == std::string_view::npos) return std::nullopt;
  size_t d2 = text.find('.', d1 + 1);
  if (d2 == std::string_view::npos || text.find('.', d2 + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  MemberId id;
  id.node = std::string(text.substr(0, d1));
  if (!ValidateNodeName(id.node).ok()) return std::nullopt;
  std::string_view inc = text.substr(d1 + 1, d2 - d1 - 1);
  std::string_view ses = text.substr(d2 + 1);
  if (inc.empty() || ses.empty()) return std::nullopt;
  auto r1 = std::from_chars(inc.data(), inc.data() + inc.size(), id.incarnation, 16);
  if (r1.ec != std::errc() || r1.ptr != inc.data() + inc.size()) return std::nullopt;
  auto r2 = std::from_chars(ses.data(), ses.data() + ses.size(), id.session, 10);
  if (r2.ec != std::errc() || r2.ptr != ses.data() + ses.size()) return std::nullopt;
  return id;
}

Status ValidateRegistryName(std::string_view name) {
  if (name.empty()) return Status::InvalidArgument("name is empty");
  return ValidateNamePrefix(name);
}

Status ValidateNamePrefix(std::string_view prefix) {
  if (prefix.size() > kMaxRegistryNameBytes) {
    return Status::InvalidArgument("name is longer than " + std::to_string(kMaxRegistryNameBytes) +
                                   " bytes");
  }
  for (unsigned char c : prefix) {
    if (c < 0x20 || c == 0x7f) return Status::InvalidArgument("name contains a control character");
  }
  return Status::Ok();
}

Status ValidateNameMetadata(std::string_view metadata) {
  if (metadata.size() > kMaxNameMetadataBytes) {
    return Status::InvalidArgument("metadata is larger than " +
                                   std::to_string(kMaxNameMetadataBytes) + " bytes");
  }
  return Status::Ok();
}

Status ValidateRecordKey(std::string_view key) {
  if (key.empty()) return Status::InvalidArgument("record key is empty");
  return ValidateRecordKeyPrefix(key);
}

Status ValidateRecordKeyPrefix(std::string_view prefix) {
  if (prefix.size() > kMaxRegistryNameBytes) {
    return Status::InvalidArgument("record key is longer than " +
                                   std::to_string(kMaxRegistryNameBytes) + " bytes");
  }
  for (unsigned char c : prefix) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument("record key contains a control character");
    }
  }
  return Status::Ok();
}

Status ValidateRecordValue(std::string_view value) {
  if (value.size() > kMaxRecordValueBytes) {
    return Status::TooLarge("record value is larger than " + std::to_string(kMaxRecordValueBytes) +
                            " bytes");
  }
  return Status::Ok();
}

}  // namespace meshbus
