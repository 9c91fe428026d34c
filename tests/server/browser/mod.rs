//! The admin panel and the portal in a real headless Chromium: stories an administrator or a
//! user goes through with clicks and typing, with screenshots of the pages.

mod admin;
mod panel_directories;
mod panel_pages;
mod panel_radius;
mod panel_radius_attributes;
mod panel_resources;
mod panel_settings;
mod panel_tokens;
mod panel_users;
mod portal;
mod portal_approval;
mod portal_rollout;
