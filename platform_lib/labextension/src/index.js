// Roman platform: a status-bar item with the user's tier, remaining core-hours and renewal date.
// Data come from the server extension platform_lib.account_extension (<server>/roman/account.json),
// which asks the quota service with the server's own hub token. Clicking opens the service.
import { IStatusBar } from '@jupyterlab/statusbar';
import { ServerConnection } from '@jupyterlab/services';
import { URLExt } from '@jupyterlab/coreutils';
import { Widget } from '@lumino/widgets';

const REFRESH_MS = 60000;

function describe(d) {
  const left = d.remaining_core_hours == null
    ? 'no allocation'
    : `${Number(d.remaining_core_hours).toFixed(1)} core-h left`;
  const until = d.renewal_date ? ` · renews ${String(d.renewal_date).slice(0, 10)}` : '';
  const warn = d.warnings && d.warnings.length ? ' ⚠' : '';
  return `Roman ${d.tier} · ${left}${until}${warn}`;
}

const plugin = {
  id: '@roman-platform/account-status:plugin',
  description: 'Tier and remaining allocation in the status bar',
  autoStart: true,
  optional: [IStatusBar],
  activate: (app, statusBar) => {
    if (!statusBar) {
      return;
    }
    const node = document.createElement('a');
    node.id = 'roman-account-status';
    node.target = '_blank';
    node.rel = 'noopener';
    node.textContent = 'Roman: …';
    const widget = new Widget({ node });
    widget.addClass('jp-StatusBar-TextItem');
    statusBar.registerStatusItem(plugin.id, { item: widget, align: 'left', rank: 1000 });
    const settings = ServerConnection.makeSettings();
    const url = URLExt.join(settings.baseUrl, 'roman/account.json');
    const refresh = async () => {
      try {
        const r = await ServerConnection.makeRequest(url, {}, settings);
        const d = await r.json();
        if (!r.ok) {
          node.textContent = 'Roman: allocation unavailable';
          node.title = d.error || String(r.status);
          return;
        }
        node.textContent = describe(d);
        node.title = (d.warnings || []).join('\n') || d.summary || '';
        if (d.service_url) {
          node.href = d.service_url;
        }
      } catch (err) {
        node.textContent = 'Roman: allocation unavailable';
        node.title = String(err);
      }
    };
    void refresh();
    window.setInterval(refresh, REFRESH_MS);
  }
};

export default plugin;
