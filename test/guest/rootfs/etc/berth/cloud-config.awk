# Turns the supported subset of a #cloud-config into a shell script:
#   write_files: items with path, content (plain, quoted or a | block),
#                encoding (b64), permissions, append
#   runcmd:      items that are strings (or flow lists: [cmd, arg, ...])
# write_files come first, as in cloud-init. Anything else is ignored.

function unquote(s) {
	if (s ~ /^".*"$/) {
		s = substr(s, 2, length(s) - 2)
		gsub(/\\n/, "\n", s); gsub(/\\"/, "\"", s); gsub(/\\\\/, "\\", s)
	} else if (s ~ /^'.*'$/) {
		s = substr(s, 2, length(s) - 2)
		gsub(/''/, "'", s)
	}
	return s
}
function shq(s) { gsub(/'/, "'\\''", s); return "'" s "'" }
function indent(s) { match(s, /^ */); return RLENGTH }
function file_done() {
	if (path == "") return
	out = append == "true" ? ">>" : ">"
	files = files "mkdir -p \"$(dirname " shq(path) ")\"\n"
	if (encoding ~ /^(b64|base64)$/)
		files = files "printf '%s' " shq(content) " | base64 -d " out " " shq(path) "\n"
	else
		files = files "printf '%s' " shq(content) " " out " " shq(path) "\n"
	if (perms != "") files = files "chmod " unquote(perms) " " shq(path) "\n"
	path = content = encoding = perms = append = ""
}
# One "key: value" of a write_files item (the "- " already removed).
function file_key(line,    key, val) {
	key = line; sub(/:.*/, "", key)
	val = line; sub(/^[^:]*:[ \t]*/, "", val); sub(/[ \t]+$/, "", val)
	if (key == "path") path = unquote(val)
	else if (key == "encoding") encoding = unquote(val)
	else if (key == "permissions") perms = val
	else if (key == "append") append = val
	else if (key == "content") {
		if (val ~ /^[|>]/) { block = 1; keep = val !~ /-/; bindent = -1; content = "" }
		else content = unquote(val)
	}
}

{ sub(/\r$/, "") }

# Inside a "content: |" block: lines indented more than the item's keys.
block {
	if ($0 ~ /^[ \t]*$/) { content = content "\n"; next }
	if (bindent < 0) bindent = indent($0)
	if (indent($0) >= bindent && bindent > kindent) {
		content = content substr($0, bindent + 1) "\n"
		next
	}
	block = 0
	if (!keep) sub(/\n+$/, "", content)
}

/^[ \t]*#/ || /^[ \t]*$/ { next }

# A top-level key starts a section.
/^[^ \t-]/ {
	if (section == "write_files") file_done()
	section = $0; sub(/:.*/, "", section)
	next
}

section == "runcmd" && /^[ \t]*- / {
	cmd = $0; sub(/^[ \t]*- */, "", cmd); sub(/[ \t]+$/, "", cmd)
	if (cmd ~ /^\[.*\]$/) {
		n = split(substr(cmd, 2, length(cmd) - 2), parts, /,[ \t]*/)
		cmd = ""
		for (i = 1; i <= n; i++) {
			gsub(/^[ \t]+|[ \t]+$/, "", parts[i])
			cmd = cmd (i > 1 ? " " : "") shq(unquote(parts[i]))
		}
	} else cmd = unquote(cmd)
	cmds = cmds "sh -c " shq(cmd) "\n"
	next
}

section == "write_files" && /^[ \t]*- / {
	file_done()
	line = $0; sub(/^[ \t]*- */, "", line)
	kindent = indent($0) + 2
	file_key(line)
	next
}

section == "write_files" && /^[ \t]+[A-Za-z_]+:/ {
	kindent = indent($0)
	line = $0; sub(/^[ \t]*/, "", line)
	file_key(line)
	next
}

END {
	if (block && !keep) sub(/\n+$/, "", content)
	if (section == "write_files") file_done()
	printf "%s%s", files, cmds
}
