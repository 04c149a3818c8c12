//! The browser app's entry point.

mod app;
mod chain_card;
mod lsp_card;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
