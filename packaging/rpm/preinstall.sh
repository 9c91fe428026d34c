# otpgate %pre: system user and group, no login shell, home = state directory.
getent group otpgate >/dev/null 2>&1 || groupadd -r otpgate
getent passwd otpgate >/dev/null 2>&1 || \
    useradd -r -g otpgate -d /var/lib/otpgate -M -s /sbin/nologin \
        -c "otpgate two-factor authentication server" otpgate
exit 0
