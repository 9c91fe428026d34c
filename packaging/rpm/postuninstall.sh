# otpgate %postun, as %systemd_postun_with_restart: on upgrade, restart the
# service if it is running. Erase keeps the data in /var/lib/otpgate and a
# modified config (as config.toml.rpmsave); an empty /etc/otpgate goes.
if [ "$1" -eq 0 ]; then
    rmdir /etc/otpgate 2>/dev/null || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart otpgate.service >/dev/null 2>&1 || :
    fi
fi
exit 0
