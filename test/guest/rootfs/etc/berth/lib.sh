# Shell functions shared by the guest's scripts (sourced, not run).

# Marker lines on the serial console; tests wait for these.
say() { echo "berth-guest: $*" > /dev/console; }

set_hostname() {
	hostname "$1"
	echo "$1" > /etc/hostname
	echo "$1" > /www/index.html
}

# Value of KEY in FILE, written as JSON ("key": "value") or YAML (key: value).
meta_get() {
	sed -n -e "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p" \
		-e "s/^[[:space:]]*$1[[:space:]]*:[[:space:]]*[\"']\\{0,1\\}\\([^\"' ]*\\)[\"']\\{0,1\\}[[:space:]]*\$/\\1/p" \
		"$2" 2>/dev/null | head -n 1
}

# Prints "DEVICE LABEL" of the config drive: ConfigDrive (config-2) or NoCloud (cidata).
drive_find() {
	for label in config-2 CONFIG-2 cidata CIDATA; do
		dev=$(findfs "LABEL=$label" 2>/dev/null) && { echo "$dev $label"; return 0; }
	done
	return 1
}

# Copies the config drive's metadata and user-data into DIR (files meta, user,
# dev, label). The drive is mounted only for the copy, so the host can swap it.
drive_read() {
	found=$(drive_find) || return 1
	set -- "$1" $found
	mkdir -p /run/berth/mnt
	mount -t iso9660 -o ro "$2" /run/berth/mnt 2>/dev/null || return 1
	rm -rf "$1" && mkdir -p "$1"
	case $3 in
	config-2|CONFIG-2)
		cp /run/berth/mnt/openstack/latest/meta_data.json "$1/meta" 2>/dev/null
		cp /run/berth/mnt/openstack/latest/user_data "$1/user" 2>/dev/null ;;
	*)
		cp /run/berth/mnt/meta-data "$1/meta" 2>/dev/null
		cp /run/berth/mnt/user-data "$1/user" 2>/dev/null ;;
	esac
	umount /run/berth/mnt
	echo "$2" > "$1/dev"
	echo "$3" > "$1/label"
}

drive_sum() { cat "$1/label" "$1/meta" "$1/user" 2>/dev/null | md5sum; }

# Hostname from the metadata in DIR; user-data published at /userdata.
apply_meta() {
	name=$(meta_get local-hostname "$1/meta")
	[ -n "$name" ] || name=$(meta_get hostname "$1/meta")
	if [ -n "$name" ]; then
		set_hostname "$name"
		echo "$name" > /run/berth/meta-hostname
		say "hostname $name"
	fi
	cat "$1/user" > /www/userdata 2>/dev/null || : > /www/userdata
}
