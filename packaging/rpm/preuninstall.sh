# otpgate %preun, as %systemd_preun: on removal (not upgrade) disable and stop.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl --no-reload disable --now otpgate.service >/dev/null 2>&1 || :
    else
        systemctl --no-reload disable otpgate.service >/dev/null 2>&1 || :
    fi
fi
exit 0
