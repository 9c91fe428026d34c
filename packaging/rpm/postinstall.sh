# otpgate %post: state directory, then the usual %systemd_post: on first
# install, apply the preset (the package ships 80-otpgate.preset, which
# enables the unit); the service is not started.
install -d -m 0750 -o otpgate -g otpgate /var/lib/otpgate || :
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload preset otpgate.service >/dev/null 2>&1 || :
fi
exit 0
