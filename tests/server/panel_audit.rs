//! The admin panel's audit pages, through real HTTPS with forms and CSRF tokens.
