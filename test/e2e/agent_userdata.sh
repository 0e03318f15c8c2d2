#!/bin/sh
# User-data of the guest-agent tests (test/e2e/agent_test.cpp), run by the test guest at boot:
# CGI scripts on the guest's httpd (port 80) that let the test stop and start qemu-ga and write
# to /data (which blocks while the filesystems are frozen). The ACPI test appends a line that
# stops acpid, so that the guest ignores the power button.
mkdir -p /www/cgi-bin
cat > /www/cgi-bin/agent-stop <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
kill "$(cat /run/berth/qemu-ga.pid)" && rm -f /run/berth/qemu-ga.pid && echo stopped
CGI
cat > /www/cgi-bin/agent-start <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
/etc/berth/agent-start > /dev/null 2>&1 && echo started
CGI
cat > /www/cgi-bin/write <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
date >> /data/agent-probe && sync && echo written
CGI
chmod 755 /www/cgi-bin/*
