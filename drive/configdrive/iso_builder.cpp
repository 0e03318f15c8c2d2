#include "drive/configdrive/iso_builder.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs.h>

namespace berth::drive {

namespace {

// Every timestamp on the drive: 2000-01-01T00:00:00Z. A fixed value makes the bytes a function of
// the content alone, so an unchanged ConfigMap gives an unchanged drive.
constexpr time_t kTimestamp = 946684800;
constexpr char kVolumeTimes[] = "2000010100000000";  // YYYYMMDDhhmmsscc, GMT

Error iso_error(std::string_view what, int code) {
  return {ErrorKind::kSystem, fmt::format("libisofs: {}: {}", what, iso_error_to_msg(code))};
}

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    iso_init_with_flag(1);  // do not take the locale from LC_* variables
    iso_set_local_charset(const_cast<char*>("UTF-8"), 0);
    iso_set_msgs_severities(const_cast<char*>("NEVER"), const_cast<char*>("NEVER"),
                            const_cast<char*>("berth"));
  });
}

void fix_node(IsoNode* node, mode_t mode) {
  iso_node_set_permissions(node, mode);
  iso_node_set_uid(node, 0);
  iso_node_set_gid(node, 0);
  iso_node_set_mtime(node, kTimestamp);
  iso_node_set_atime(node, kTimestamp);
  iso_node_set_ctime(node, kTimestamp);
}

struct ImageDeleter {
  void operator()(IsoImage* image) const { iso_image_unref(image); }
};
struct OptsDeleter {
  void operator()(IsoWriteOpts* opts) const { iso_write_opts_free(opts); }
};
struct SourceDeleter {
  void operator()(burn_source* source) const {
    source->free_data(source);
    std::free(source);
  }
};

using ImagePtr = std::unique_ptr<IsoImage, ImageDeleter>;
using OptsPtr = std::unique_ptr<IsoWriteOpts, OptsDeleter>;

// An empty image with the volume's identifiers and a root directory of mode 0555.
Result<ImagePtr> new_image(const std::string& label) {
  IsoImage* raw_image = nullptr;
  if (int rc = iso_image_new(label.c_str(), &raw_image); rc < 0)
    return iso_error("creating the image", rc);
  ImagePtr image(raw_image);
  iso_image_set_volume_id(image.get(), label.c_str());
  iso_image_set_volset_id(image.get(), label.c_str());
  iso_image_set_application_id(image.get(), "BERTH");
  iso_image_set_system_id(image.get(), "LINUX");
  iso_image_set_publisher_id(image.get(), "");
  iso_image_set_data_preparer_id(image.get(), "");
  fix_node(reinterpret_cast<IsoNode*>(iso_image_get_root(image.get())), 0555);
  return image;
}

// The directories of the image, created on first use.
class DirTree {
 public:
  explicit DirTree(IsoImage* image) : image_(image), dirs_{{"", iso_image_get_root(image)}} {}

  // Creates every directory of `path` (memoised), returning the parent of its leaf.
  Result<IsoDir*> parent_of(const std::string& path) {
    std::string prefix;
    IsoDir* dir = dirs_.at("");
    std::size_t start = 0;
    for (std::size_t slash; (slash = path.find('/', start)) != std::string::npos;
         start = slash + 1) {
      const std::string name = path.substr(start, slash - start);
      prefix += (prefix.empty() ? "" : "/") + name;
      auto it = dirs_.find(prefix);
      if (it != dirs_.end()) {
        dir = it->second;
        continue;
      }
      IsoDir* child = nullptr;
      if (int rc = iso_image_add_new_dir(image_, dir, name.c_str(), &child); rc < 0)
        return iso_error(fmt::format("adding the directory {}", prefix), rc);
      fix_node(reinterpret_cast<IsoNode*>(child), 0555);
      dirs_.emplace(prefix, child);
      dir = child;
    }
    return dir;
  }

 private:
  IsoImage* image_;
  std::map<std::string, IsoDir*> dirs_;
};

// Adds one file (mode 0444) with its directories.
Result<void> add_file(IsoImage* image, DirTree& dirs, const DriveFile& file) {
  auto parent = dirs.parent_of(file.path);
  if (!parent)
    return parent.error();
  const std::string leaf = file.path.substr(file.path.rfind('/') + 1);
  if (leaf.empty())
    return Error{ErrorKind::kInvalidInput, fmt::format("\"{}\" is not a file name", file.path)};
  // The memory stream takes ownership of a malloc'ed buffer (it frees it with free()).
  auto* buffer =
      static_cast<unsigned char*>(std::malloc(std::max<std::size_t>(1, file.data.size())));
  if (buffer == nullptr)
    return Error{ErrorKind::kSystem, "out of memory building the config drive"};
  std::memcpy(buffer, file.data.data(), file.data.size());
  IsoStream* stream = nullptr;
  if (int rc = iso_memory_stream_new(buffer, file.data.size(), &stream); rc < 0) {
    std::free(buffer);
    return iso_error(fmt::format("adding {}", file.path), rc);
  }
  IsoFile* node = nullptr;
  // On success the new file node takes over the stream's reference.
  if (int rc = iso_image_add_new_file(image, *parent, leaf.c_str(), stream, &node); rc < 0) {
    iso_stream_unref(stream);
    return iso_error(fmt::format("adding {}", file.path), rc);
  }
  fix_node(reinterpret_cast<IsoNode*>(node), 0444);
  return {};
}

// ISO level 2, Rock Ridge 1.10 and Joliet, with every mode, owner and timestamp fixed.
Result<OptsPtr> write_options() {
  IsoWriteOpts* raw_opts = nullptr;
  if (int rc = iso_write_opts_new(&raw_opts, 0); rc < 0)
    return iso_error("creating the write options", rc);
  OptsPtr opts(raw_opts);
  iso_write_opts_set_iso_level(opts.get(), 2);
  iso_write_opts_set_rockridge(opts.get(), 1);
  // RRIP 1.10 PX entries carry no inode numbers: libisofs hands those out in an order that varies
  // from build to build, and the guest needs none (no hard links here).
  iso_write_opts_set_rrip_version_1_10(opts.get(), 1);
  iso_write_opts_set_rrip_1_10_px_ino(opts.get(), 0);
  iso_write_opts_set_hardlinks(opts.get(), 0);
  iso_write_opts_set_joliet(opts.get(), 1);
  iso_write_opts_set_relaxed_vol_atts(opts.get(), 1);  // keep "config-2" lower-case in the PVD
  // Joliet names exactly as the files are named (as genisoimage writes them): no ";1", no dot
  // added to names without an extension. The ISO 9660 names keep the standard's form.
  iso_write_opts_set_omit_version_numbers(opts.get(), 2);
  iso_write_opts_set_no_force_dots(opts.get(), 2);
  iso_write_opts_set_always_gmt(opts.get(), 1);
  iso_write_opts_set_output_charset(opts.get(), "UTF-8");
  iso_write_opts_set_replace_mode(opts.get(), 0, 0, 0, 0);  // the modes/owners set on the nodes
  iso_write_opts_set_replace_timestamps(opts.get(), 2);
  iso_write_opts_set_default_timestamp(opts.get(), kTimestamp);
  iso_write_opts_set_dir_rec_mtime(opts.get(), 3);  // ECMA-119 and Joliet records too
  iso_write_opts_set_pvd_times(opts.get(), kTimestamp, kTimestamp, 0, 0,
                               const_cast<char*>(kVolumeTimes));
  return opts;
}

// The image's bytes, as libisofs writes them.
Result<std::string> render(IsoImage* image, IsoWriteOpts* opts) {
  burn_source* raw_source = nullptr;
  if (int rc = iso_image_create_burn_source(image, opts, &raw_source); rc < 0)
    return iso_error("starting the image", rc);
  std::unique_ptr<burn_source, SourceDeleter> source(raw_source);
  std::string iso;
  iso.reserve(static_cast<std::size_t>(source->get_size(source.get())));
  unsigned char block[2048];
  for (;;) {
    const int n = source->read_xt(source.get(), block, sizeof block);
    if (n < 0)
      return Error{ErrorKind::kSystem, "libisofs: writing the image failed"};
    if (n == 0)
      break;
    iso.append(reinterpret_cast<const char*>(block), static_cast<std::size_t>(n));
  }
  return iso;
}

}  // namespace

Result<std::string> build_iso(const DriveContent& content) {
  init_once();
  auto image = new_image(content.label);
  if (!image)
    return image.error();
  DirTree dirs(image->get());
  for (const auto& file : content.files)
    if (auto added = add_file(image->get(), dirs, file); !added)
      return added.error();
  auto opts = write_options();
  if (!opts)
    return opts.error();
  return render(image->get(), opts->get());
}

}  // namespace berth::drive
