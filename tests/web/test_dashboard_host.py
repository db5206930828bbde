from __future__ import annotations

from pytest_django.asserts import assertContains, assertNotContains

from tests.web.guards import assert_page_guarded


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client, demo):
    assert_page_guarded("/dashboard/hosts/db1/", anon_client, user_client, staff_client)


def test_it_shows_config_schedule_runs_and_the_error_tail(staff_client, demo):
    response = staff_client.get("/dashboard/hosts/db1/")
    assertContains(response, "<h1>db1</h1>", html=True)
    assertContains(response, "db1.example.internal")
    assertContains(response, "/var/lib/mysql-backup")
    assertContains(response, "30 1 * * *")
    assertContains(response, "Connection timed out")  # the rsync log tail
    assertContains(response, '<span class="badge b-failing">failing</span>', html=True)
    assertContains(response, f'href="/admin/pobsync_models/host/{demo["db1"].pk}/change/"')
    assert len(response.context["d"].present_snapshots) == 3


def test_it_does_not_list_a_pruned_snapshot_as_present(staff_client, demo):
    response = staff_client.get("/dashboard/hosts/web1/")
    detail = response.context["d"]
    pruned = detail.history_snapshots[0]
    assert pruned.state == "pruned"
    assert pruned.name not in [s.name for s in detail.present_snapshots]
    present_table = (
        response.content.decode().split('id="present-snapshots"')[1].split("</table>")[0]
    )
    assert pruned.name not in present_table
    assertContains(response, "1 pruned")


def test_it_shows_the_running_job_with_its_progress(staff_client, demo):
    response = staff_client.get("/dashboard/hosts/build/")
    assertContains(response, 'id="running-job"')
    assertContains(response, "63%")
    assertContains(response, "backup01:4242")


def test_it_marks_settings_inherited_from_the_global_config(staff_client, demo):
    response = staff_client.get("/dashboard/hosts/files/")
    assertContains(response, "*.tmp")
    assertContains(response, "(global)")
    assertNotContains(response, "No global configuration yet")


def test_it_answers_an_unknown_host_with_404(staff_client, demo):
    assert staff_client.get("/dashboard/hosts/nope/").status_code == 404
