//! The admin panel's admins pages, through real HTTPS with forms and CSRF tokens.
